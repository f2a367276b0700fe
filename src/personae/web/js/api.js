// The public JSON API: cookies for the session, the CSRF header on every write,
// and problem+json errors turned into ApiError.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || (status === 0 ? "network" : "unknown");
    this.detail = problem.detail || "";
    this.requestId = problem.request_id || null;
    this.retryable = Boolean(problem.retryable);
    this.retryAfter = problem.retry_after ?? null;
    this.errors = problem.errors || [];
    this.problem = problem;
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)personae_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, path, body, { form } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (form) {
    payload = form;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, { code: "network", detail: String(error) });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => ({})) : {};
  if (!response.ok) {
    if (!data.request_id) data.request_id = response.headers.get("x-request-id");
    if (data.retry_after == null && response.headers.get("retry-after")) {
      data.retry_after = Number(response.headers.get("retry-after"));
    }
    throw new ApiError(response.status, data);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const put = (path, body) => api("PUT", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
