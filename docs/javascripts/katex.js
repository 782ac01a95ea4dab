// Render the math that pymdownx.arithmatex (generic mode) leaves as \( … \) or \[ … \] in
// .arithmatex elements, with KaTeX (copied into the site by docs_hooks/katex.py; no CDN).
(function () {
  function render() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      var tex = el.textContent.trim();
      var display = tex.startsWith("\\[") && tex.endsWith("\\]");
      if (display || (tex.startsWith("\\(") && tex.endsWith("\\)"))) {
        tex = tex.slice(2, -2);
      }
      katex.render(tex, el, { displayMode: display, throwOnError: false });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
