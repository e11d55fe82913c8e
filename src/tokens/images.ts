/**
 * Image token estimate, following OpenAI's published vision pricing for GPT-4o-class models:
 * `detail: "low"` costs 85 tokens; otherwise the image is scaled to fit 2048×2048, then its short
 * side to 768, and each 512-px tile costs 170 plus a base of 85. When the size is unknown (a remote
 * URL), a 1024×1024 image is assumed: 4 tiles, 765 tokens. Dimensions are read from the header of
 * base64 PNG, GIF and JPEG data URLs.
 */
export const IMAGE_BASE_TOKENS = 85;
export const IMAGE_TILE_TOKENS = 170;
export const DEFAULT_IMAGE_TOKENS = 765;

export function tilesTokens(width: number, height: number): number {
  let w = width;
  let h = height;
  if (w > 2048 || h > 2048) {
    const scale = 2048 / Math.max(w, h);
    w *= scale;
    h *= scale;
  }
  if (Math.min(w, h) > 768) {
    const scale = 768 / Math.min(w, h);
    w *= scale;
    h *= scale;
  }
  const tiles = Math.ceil(w / 512) * Math.ceil(h / 512);
  return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles;
}

function decodeHead(url: string, bytes: number): Buffer | undefined {
  const comma = url.indexOf(',');
  if (comma < 0 || !url.slice(0, comma).endsWith(';base64')) return undefined;
  // Base64 of the first `bytes` bytes; a multiple of 4 characters decodes cleanly.
  const chars = Math.ceil(bytes / 3) * 4;
  return Buffer.from(url.slice(comma + 1, comma + 1 + chars), 'base64');
}

export function imageDimensions(url: string): { width: number; height: number } | undefined {
  if (!url.startsWith('data:image/')) return undefined;
  const head = decodeHead(url, 64 * 1024);
  if (!head || head.length < 24) return undefined;
  if (head.readUInt32BE(0) === 0x89504e47) return { width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
  if (head.toString('latin1', 0, 3) === 'GIF') return { width: head.readUInt16LE(6), height: head.readUInt16LE(8) };
  if (head[0] === 0xff && head[1] === 0xd8) {
    let offset = 2;
    while (offset + 9 < head.length) {
      if (head[offset] !== 0xff) return undefined;
      const marker = head[offset + 1]!;
      const length = head.readUInt16BE(offset + 2);
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: head.readUInt16BE(offset + 5), width: head.readUInt16BE(offset + 7) };
      }
      offset += 2 + length;
    }
  }
  return undefined;
}

export function imageTokens(url: string, detail: string | undefined, unknownSizeTokens: number): number {
  if (detail === 'low') return IMAGE_BASE_TOKENS;
  const size = imageDimensions(url);
  return size && size.width > 0 && size.height > 0 ? tilesTokens(size.width, size.height) : unknownSizeTokens;
}
