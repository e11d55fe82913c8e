"""Derive the bench's agent traces from the project's shared evaluation data (see README.md).

Run from the repository root: python3 bench/data/agent-traces/extract.py ../shared/data/agent-traces
Writes short/*.json (OpenAI chat messages) and moatless/*.json (Anthropic messages). Kept for
provenance: the bench reads only what it wrote.
"""
import ast, json, os, sys

src = sys.argv[1]
out = os.path.dirname(os.path.abspath(__file__))

def write(folder, name, record):
    with open(os.path.join(out, folder, name + '.json'), 'w') as f:
        json.dump(record, f, ensure_ascii=False, separators=(',', ':'))

def unique_ids():
    seen = {}
    def fresh(raw):
        count = seen.get(raw, 0)
        seen[raw] = count + 1
        return raw if count == 0 else f'{raw}_{count}'
    return fresh

# SWE-agent: history lists; tool_calls and tool_call_ids are Python reprs; some runs reuse ids.
swe = sorted(f for f in os.listdir(os.path.join(src, 'swe-agent')) if f.endswith('.traj'))
for file in swe:
    history = json.load(open(os.path.join(src, 'swe-agent', file)))['history']
    fresh = unique_ids()
    last = {}
    messages = []
    for m in history:
        role, content = m['role'], m.get('content')
        if isinstance(content, list):
            content = '\n'.join(part.get('text', '') for part in content if isinstance(part, dict))
        if role == 'assistant' and m.get('tool_calls'):
            calls = m['tool_calls'] if isinstance(m['tool_calls'], list) else ast.literal_eval(m['tool_calls'])
            converted = []
            for call in calls:
                new = fresh(call['id'])
                last[call['id']] = new
                converted.append({'id': new, 'type': 'function', 'function': {'name': call['function']['name'], 'arguments': call['function']['arguments']}})
            messages.append({'role': 'assistant', 'content': content or None, 'tool_calls': converted})
        elif role == 'tool':
            ids = m.get('tool_call_ids')
            ids = ids if isinstance(ids, list) else ast.literal_eval(ids or '[]')
            messages.append({'role': 'tool', 'tool_call_id': last.get(ids[0], ids[0]) if ids else '', 'content': content or ''})
        else:
            messages.append({'role': role, 'content': content or ''})
    tools = any(m.get('tool_calls') for m in messages)
    # Function-calling runs, and a few whose observations are user messages (the older SWE-agent shape).
    if tools or file.startswith(('demonstrations__ctf__crypto__BabyEncryption', 'demonstrations__human_thought', 'tests__gpt4__swe-agent__test-repo')):
        write('short', 'swe-agent__' + file[:-5][:90], {'source': 'swe-agent', 'file': file, 'messages': messages})

# ToolBench: the last chain of train_messages (legacy function_call / role function), ids made up.
for file in sorted(f for f in os.listdir(os.path.join(src, 'toolbench')) if f.startswith('G')):
    answer = json.load(open(os.path.join(src, 'toolbench', file)))['answer_generation']
    chains = answer.get('train_messages') or []
    if not chains:
        continue
    messages, k = [], 0
    for m in chains[-1]:
        if m['role'] == 'assistant' and m.get('function_call'):
            k += 1
            call = m['function_call']
            messages.append({'role': 'assistant', 'content': m.get('content'), 'tool_calls': [{'id': f'call_{k}', 'type': 'function', 'function': {'name': call['name'], 'arguments': call.get('arguments') or '{}'}}]})
        elif m['role'] == 'function':
            messages.append({'role': 'tool', 'tool_call_id': f'call_{k}', 'content': m.get('content') or ''})
        else:
            messages.append({'role': m['role'], 'content': m.get('content') or ''})
    write('short', 'toolbench__' + file[:-5], {'source': 'toolbench', 'file': file, 'messages': messages})

# OpenHands: event streams; actions with tool_call_metadata become calls, their observations results.
for file in sorted(f for f in os.listdir(os.path.join(src, 'openhands')) if f.endswith('.json')):
    events = json.load(open(os.path.join(src, 'openhands', file)))
    messages = [{'role': 'system', 'content': 'You are OpenHands agent, a helpful AI assistant that can interact with a computer to solve tasks.'}]
    for e in events:
        meta = e.get('tool_call_metadata')
        if e.get('source') == 'user' and e.get('action') == 'message':
            messages.append({'role': 'user', 'content': e['args']['content']})
        elif e.get('source') == 'agent' and 'action' in e and meta:
            message = meta['model_response']['choices'][0]['message']
            calls = [c for c in message.get('tool_calls') or [] if c['id'] == meta['tool_call_id']]
            if not calls:
                continue
            if e['action'] in ('finish', 'message'):
                messages.append({'role': 'assistant', 'content': e.get('message') or message.get('content') or ''})
                continue
            messages.append({'role': 'assistant', 'content': message.get('content'), 'tool_calls': [{'id': c['id'], 'type': 'function', 'function': {'name': c['function']['name'], 'arguments': c['function']['arguments']}} for c in calls]})
        elif e.get('source') == 'agent' and 'observation' in e and meta:
            messages.append({'role': 'tool', 'tool_call_id': meta['tool_call_id'], 'content': e.get('content') or e.get('message') or ''})
        elif e.get('source') == 'agent' and e.get('action') == 'message':
            messages.append({'role': 'assistant', 'content': e.get('message') or ''})
    write('short', 'openhands__' + file[:-5], {'source': 'openhands', 'file': file, 'messages': messages})

# Moatless: Anthropic messages (the largest request of each run); every third run by name.
runs = sorted(f for f in os.listdir(os.path.join(src, 'moatless')) if f.endswith('.json'))
for file in runs[::3]:
    record = json.load(open(os.path.join(src, 'moatless', file)))
    messages = []
    for m in record['messages']:
        content = m['content']
        if isinstance(content, list):
            content = [dict(block, type=block.get('type', 'tool_result' if 'tool_use_id' in block else 'text')) for block in content]
        messages.append({'role': m['role'], 'content': content})
    write('moatless', file[:-5], {'source': 'moatless', 'instance_id': record.get('instance_id'), 'model': record.get('model'), 'messages': messages})
