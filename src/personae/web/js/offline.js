// The offline page's one action (a file, not an inline handler: the
// Content-Security-Policy allows no inline script).
document.getElementById("try-again").addEventListener("click", () => location.reload());
