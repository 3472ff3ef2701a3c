// The connector's error object as a person reads it: what, where, what to do.
export function ErrorBox({ error }) {
  if (!error) return null;
  const fields = error.details?.errors ?? [];
  // A hint is written for engines ("the fields listed in details.errors"); here those fields are
  // the list just above it.
  const hint =
    fields.length > 0 ? error.hint?.replace('listed in details.errors', 'listed above') : error.hint;
  return (
    <div className="error-box" role="alert">
      <strong>{error.message}</strong>
      <div className="muted">
        {error.code} · {error.category}
        {error.retry_at ? ` · retry at ${error.retry_at}` : ''}
      </div>
      {fields.length > 0 && (
        <ul>
          {fields.map((f) => (
            <li key={f.path + f.message}>
              <code>{f.path}</code> {f.message}
            </li>
          ))}
        </ul>
      )}
      {hint && <div className="hint">{hint}</div>}
    </div>
  );
}
