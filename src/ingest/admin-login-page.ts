/**
 * The dashboard's login form: one field for `INLET_ADMIN_TOKEN`. Self-contained (no scripts, no
 * outside resources), so it can be served under a strict Content-Security-Policy.
 */
export function loginPage(options: { next: string; error?: string }): string {
  const error = options.error
    ? `<p class="error" role="alert">${escapeHtml(options.error)}</p>`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>inlet · log in</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2530; margin: 0;
         display: grid; place-items: center; min-height: 100vh; }
  form { background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px #0002;
         width: min(24rem, 90vw); }
  h1 { font-size: 1.25rem; margin: 0 0 1rem; }
  label { display: block; margin-bottom: .25rem; }
  input { box-sizing: border-box; width: 100%; padding: .5rem; font: inherit; margin-bottom: 1rem; }
  button { padding: .5rem 1rem; font: inherit; cursor: pointer; }
  .error { color: #b3261e; margin: 0 0 1rem; }
</style>
</head>
<body>
<form method="post" action="/admin/login">
  <h1>inlet queue dashboard</h1>
  ${error}
  <label for="token">Admin token (INLET_ADMIN_TOKEN)</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <input type="hidden" name="next" value="${escapeHtml(options.next)}">
  <button type="submit">Log in</button>
</form>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
