/**
 * Normalise LoCoMo evidence ids. The data writes them in several messy forms:
 * "D8:6; D9:17" (two in one string), "D:11:26" (a stray colon), "D30:05" (a leading zero),
 * "D12:3-D12:5" or "D12:3-5" (ranges), "D 2:18" (a space). Each becomes canonical "D<session>:<turn>".
 * A string that names no turn yields nothing.
 */
export function normalizeEvidence(raw: string): string[] {
  const ids: string[] = [];
  for (const piece of raw.split(/[;,]|\s+and\s+/)) {
    const cleaned = piece.replace(/\s+/g, '').replace(/^D:/i, 'D');
    if (cleaned.length === 0) continue;
    const range = /^D(\d+):(\d+)-(?:D(\d+):)?(\d+)$/i.exec(cleaned);
    if (range) {
      const session = Number(range[1]);
      const endSession = range[3] === undefined ? session : Number(range[3]);
      const start = Number(range[2]);
      const end = Number(range[4]);
      // Ranges only ever span one session in the data; a cross-session range keeps its two ends.
      if (endSession !== session || end < start || end - start > 50) {
        ids.push(`D${session}:${start}`, `D${endSession}:${end}`);
      } else for (let turn = start; turn <= end; turn++) ids.push(`D${session}:${turn}`);
      continue;
    }
    const single = /^D(\d+):(\d+)$/i.exec(cleaned);
    if (single) ids.push(`D${Number(single[1])}:${Number(single[2])}`);
  }
  return [...new Set(ids)];
}
