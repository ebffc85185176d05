/* login.js: trade a token for a session cookie (POST /web/login), then
 * reload: the server serves the app to a logged-in browser.  The token is
 * sent in the body only, never in a URL, and is not kept by the page. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const input = document.getElementById("token");
  const error = document.getElementById("login-error");

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    let resp;
    try {
      resp = await fetch("/web/login", {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Tether-CSRF": "1"},
        body: JSON.stringify({token: input.value.trim()}),
      });
    } catch (e) {
      error.textContent = "Cannot reach the workspace: " + e.message;
      return;
    }
    input.value = "";
    if (resp.ok) {
      const path = location.pathname === "/login" ? "/" : location.pathname;
      location.replace(path);
      return;
    }
    let msg = "Login refused (HTTP " + resp.status + ")";
    try {
      const body = await resp.json();
      if (body.error && body.error.message)
        msg = "Login refused: " + body.error.message;
    } catch (e) { /* not JSON */ }
    error.textContent = msg;
    input.focus();
  });
});
