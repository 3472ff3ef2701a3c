// The page's one way to talk to its server: JSON both ways, this run's CSRF token on every call.
const token = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

export class ApiError extends Error {
  constructor(error) {
    super(error?.message ?? 'The request failed.');
    this.error = error ?? {};
  }
}

function send(method, path, body, accept = 'application/json') {
  return fetch(path, {
    method,
    headers: { 'Content-Type': 'application/json', Accept: accept, 'X-CSRF-Token': token },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export async function api(method, path, body) {
  const response = await send(method, path, body);
  const data = await response.json();
  if (!response.ok) throw new ApiError(data.error);
  return data;
}

// A POST whose answer streams: one JSON object per line, {progress} while the run goes on (each
// handed to onProgress), then {answer} or {error}.
export async function streamed(path, body, onProgress) {
  const response = await send('POST', path, body, 'application/x-ndjson');
  if (!response.ok) throw new ApiError((await response.json()).error);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let end;
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      if (line.progress) onProgress(line.progress);
      else if (line.error) throw new ApiError(line.error);
      else return line.answer;
    }
  }
  throw new ApiError({ message: 'The run stopped without an answer; the server log says why.' });
}

// A run's progress in words: "120 rows in 2 pages, 3 calls; waiting for the rate limit until 12:01:00".
export function progressLine({ rows, pages, calls, waiting }) {
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const calling = plural(calls, 'call');
  const counts = pages ? `${plural(rows, 'row')} in ${plural(pages, 'page')}, ${calling}` : calling;
  if (!waiting) return counts;
  const until = new Date(waiting.until).toLocaleTimeString();
  const why = waiting.reason === 'retry' ? 'Exact Online asked to wait; retrying at' : 'waiting for the rate limit until';
  return `${counts}; ${why} ${until}`;
}

// The connector's field errors ({path: "$.a.b", message}) as RJSF extraErrors ({a: {b: {__errors}}}).
export function extraErrors(error) {
  const tree = {};
  for (const { path, message } of error?.details?.errors ?? []) {
    // $.data.Quantity, $.select[1]; a key shown as [*] or ["…"] is not followed (its parent
    // carries the message).
    const parts = [];
    for (const [, name, index] of String(path).matchAll(/\.([A-Za-z_][\w]*)|\[(\d+)\]|\[[^\]]*\]/g)) {
      if (name === undefined && index === undefined) break;
      parts.push(name ?? index);
    }
    let node = tree;
    for (const part of parts) node = node[part] ??= {};
    (node.__errors ??= []).push(message);
  }
  return tree;
}
