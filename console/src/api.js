// REST reads with the key as a Bearer token. The key goes in the
// Authorization header only, never in the URL, and requests carry no
// cookies and no referrer.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

// Fetches a JSON document from this origin. Returns the parsed body, or
// throws ApiError (status 0 when the server could not be reached).
export async function apiGet(path, key) {
  let res;
  try {
    res = await fetch(path, {
      headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, 'network error');
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const detail = body && typeof body.detail === 'string' ? body.detail : res.statusText;
    throw new ApiError(res.status, detail);
  }
  return body;
}
