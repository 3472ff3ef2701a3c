// The page's one way to talk to its server: JSON both ways, this run's CSRF token on every call.
const token = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

export class ApiError extends Error {
  constructor(error) {
    super(error?.message ?? 'The request failed.');
    this.error = error ?? {};
  }
}

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new ApiError(data.error);
  return data;
}

// The connector's field errors ({path: "$.a.b", message}) as RJSF extraErrors ({a: {b: {__errors}}}).
export function extraErrors(error) {
  const tree = {};
  for (const { path, message } of error?.details?.errors ?? []) {
    const parts = path.replace(/^\$\.?/, '').split('.').filter(Boolean);
    let node = tree;
    for (const part of parts) node = node[part] ??= {};
    (node.__errors ??= []).push(message);
  }
  return tree;
}
