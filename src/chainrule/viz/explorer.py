"""One self-contained HTML page to explore a graph and replay its backpropagation.

The page embeds the SVG that ``dot`` makes of :func:`chainrule.viz.draw` (backward and
saved bytes included), the per-node details and equations as JSON, and a little inline
script: no CDN, no server, works offline. The replay follows the order the engine really
ran (recorded by a hook during a backward), highlighting the node whose rules run and
greying out the saved arrays as they are released, with the bytes still held.
"""

from __future__ import annotations

import base64
import hashlib
import html as _html
import json
import os
import re
from pathlib import Path
from typing import Any

from chainrule.core.tensor import Tensor
from chainrule.viz.drawing import atomic_write, draw, human_bytes
from chainrule.viz.equations import explain
from chainrule.viz.model import build
from chainrule.viz.recording import context
from chainrule.viz.trace import Step, Trace, dry_run


def _replay(outputs: list[Tensor], trace: Trace | None, seqs: set[int]) -> tuple[Trace, str]:
    if trace is not None and any(s.seq in seqs for s in trace.steps):
        return trace, "recorded by a hook during backward"
    dry = dry_run(outputs[:1])
    if dry is not None:
        return dry, "recorded by a hook during a dry-run backward (each node released as a plain backward does)"
    return Trace(), "graph already released and no trace given: order predicted (latest-created node first)"


class Explorer:
    """The explorer page, displayed inline in Jupyter (sandboxed ``<iframe srcdoc>``, offline).

    ``.page`` is the HTML; ``.save(path, force=False)`` writes it atomically. The iframe's
    sandbox allows scripts only (no same-origin access, no forms, no pop-ups, no top navigation).
    """

    def __init__(self, page: str, title: str, height: int = 720) -> None:
        self.page = page
        self.title = title
        self.height = height

    def save(self, path: str | os.PathLike[str], force: bool = False) -> Path:
        """Write the page to ``path`` (refuses to replace a file unless ``force``)."""
        return atomic_write(path, self.page.encode("utf-8"), force=force)

    def _repr_html_(self) -> str:
        return (
            f'<iframe class="chainrule-explorer" title="{_html.escape(self.title, quote=True)}" '
            f'sandbox="allow-scripts" referrerpolicy="no-referrer" style="width:100%;height:{int(self.height)}px;'
            f'border:1px solid #ccc" srcdoc="{_html.escape(self.page, quote=True)}"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<chainrule explorer {self.title!r}: {len(self.page):,} characters of HTML; .save(path) writes it>"


def html(
    *outputs: Tensor,
    path: str | os.PathLike[str] | None = None,
    trace: Trace | None = None,
    names: Any = None,
    symbols: dict[str, float] | None = None,
    batch_axis: int | None = None,
    force: bool = False,
    title: str = "chainrule graph",
) -> Path | Explorer:
    """An offline HTML explorer of the graph that produced ``outputs``.

    With ``path`` the page is written there (atomically; an existing file is replaced only
    with ``force``) and the ``Path`` is returned; without it an :class:`Explorer` that
    displays itself inline in Jupyter.
    trace: ``with cr.viz.trace() as tr: ... J.backward()`` — the replay then shows that very
        backward; without it a dry-run backward (which changes nothing) is recorded.
    """
    target = Path(path) if path is not None else None
    if target is not None and target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force (force=True) to overwrite it")
    page = explorer_page(*outputs, trace=trace, names=names, symbols=symbols, batch_axis=batch_axis, title=title)
    if target is None:
        return Explorer(page, title)
    return atomic_write(target, page.encode("utf-8"), force=force)


def explorer_page(
    *outputs: Tensor,
    trace: Trace | None = None,
    names: Any = None,
    symbols: dict[str, float] | None = None,
    batch_axis: int | None = None,
    title: str = "chainrule graph",
) -> str:
    """The explorer's HTML page (see :func:`html`)."""
    if not outputs:
        raise ValueError("html: give at least one output tensor")
    outs = list(outputs)
    names, trace = context(outs, names, trace)
    g = build(outs, names, trace=trace)
    seqs = {op.seq for op in g.ops}
    walk, source = _replay(outs, trace, seqs)
    steps: list[Step] = [s for s in walk.steps if s.seq in seqs]
    if not steps:  # predicted: latest-created first, each node released after its rules
        for op in sorted(g.ops, key=lambda o: -o.seq):
            steps.append(Step(op.seq, op.name, True, g.saved_items(op)))
        walk = Trace(steps=steps)
    drawing = draw(*outs, backward=True, saved=True, names=names, trace=walk, title=title)
    svg = drawing.pipe(format="svg").decode("utf-8")
    svg = safe_svg(svg[svg.index("<svg") :])

    try:
        ex = explain(*outs[:1], names=names, symbols=symbols, batch_axis=batch_axis, trace=trace)
        fwd = {k: e.txt for k, e in ex.node_forward.items()}
        bwd = {k: e.txt for k, e in ex.node_backward.items()}
        equations_text = ex.text()
    except Exception as exc:  # an explanation must never cost the user the drawing
        fwd, bwd, equations_text = {}, {}, f"(equations unavailable: {exc})"

    info = _info(g, fwd, bwd)
    replay = [
        {"seq": s.seq, "name": s.name, "released": s.released, "items": [[str(k), n] for k, n in s.items]}
        for s in steps
    ]
    data = {"info": info, "steps": replay, "source": source}
    page = _PAGE.format(
        title=_html.escape(title),
        svg=svg,
        data=script_json(data),
        equations=_html.escape(equations_text),
        caption=_html.escape(source),
        script=_SCRIPT,
        style=_STYLE,
        csp=CSP,
    )
    return page


def _info(g: Any, fwd: dict[str, str], bwd: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What the side panel shows for every variable, gradient, operator and backward operator."""
    info: dict[str, dict[str, Any]] = {}
    for vid, v in g.vars.items():
        producer = g.op_of(vid)
        entry: dict[str, Any] = {
            "kind": {
                "param": "parameter",
                "leaf": "leaf",
                "input": "input",
                "const": "constant",
                "value": "intermediate",
            }[v.kind],
            "name": v.name or "(unnamed)",
            "shape": _shape_text(v.shape),
            "dtype": v.dtype or "Python number",
            "op": producer.name if producer else "—",
            "source": (producer.node.origin if producer else None) or _no_origin(producer is not None),
            "forward": fwd.get(vid, ""),
            "backward": bwd.get(vid, "") if v.needs_grad else "(no gradient: constant)",
        }
        if v.kind == "const":
            entry["value"] = repr(v.value)
        info[vid] = entry
        if v.needs_grad:
            info[f"g_{vid}"] = {**entry, "kind": "gradient", "name": f"gradient of {entry['name']}"}
    for op in g.ops:
        nbytes = sum(n for _, n in g.saved_items(op))
        out = g.vars[op.output]
        entry = {
            "kind": "operator" + (" (recorded backward)" if op.second_order else ""),
            "name": op.name,
            "op": op.name,
            "shape": _shape_text(out.shape),
            "dtype": out.dtype,
            "source": op.node.origin or _no_origin(True),
            "saved": f"{human_bytes(nbytes)} ({'released' if op.node.released else 'alive'})",
            "forward": fwd.get(op.output, ""),
            "backward": bwd.get(op.output, ""),
        }
        info[op.id] = entry
        computes = [bwd[v] for v, p in zip(op.inputs, op.node.parents, strict=True) if p is not None and v in bwd]
        info[f"b{op.seq}"] = {
            **entry,
            "kind": "backward operator",
            "name": f"∇{op.name}",
            "backward": "\n".join(dict.fromkeys(computes)) or entry["backward"],
        }
    return info


def script_json(data: Any) -> str:
    """JSON safe inside ``<script>``: no ``<``, ``>`` or ``&`` at all (``</script>``, ``<!--`` cannot occur)."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_HREF = re.compile(r"""\s(?:xlink:)?href\s*=\s*("[^"]*"|'[^']*')""", re.IGNORECASE)
_SAFE_URL = re.compile(r"^(#|https?:)", re.IGNORECASE)


def safe_svg(svg: str) -> str:
    """Drop every link target that is not a fragment or http(s) (``javascript:``, ``data:``)."""

    def keep(m: re.Match[str]) -> str:
        url = _html.unescape(m.group(1)[1:-1]).strip()
        url = "".join(c for c in url if c.isprintable() and not c.isspace())
        return m.group(0) if _SAFE_URL.match(url) else ""

    return _HREF.sub(keep, svg)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _no_origin(is_op: bool) -> str:
    return "not recorded (build the graph under cr.detect_anomaly() to record it)" if is_op else "—"


_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#canvas{flex:1;overflow:auto;border-right:1px solid #ccc;padding:8px;box-sizing:border-box;height:100vh}
#side{width:400px;padding:10px 14px;overflow:auto;font-size:14px}
#side h2{font-size:16px;margin:8px 0}
#info table{border-collapse:collapse;width:100%}
#info td{border-bottom:1px solid #eee;padding:3px 4px;vertical-align:top}
#info td:first-child{color:#666;white-space:nowrap}
.eq{font-family:"DejaVu Sans Mono",monospace;white-space:pre-wrap}
#controls button{margin:2px;padding:4px 10px}
#bytes{font-weight:bold}
g.node{cursor:pointer}
g.node.selected polygon,g.node.selected path,g.node.selected ellipse{stroke:#1565c0;stroke-width:3}
g.node.current ellipse,g.node.current path,g.node.current polygon{fill:#ffd54f;stroke:#e65100;stroke-width:3}
g.node.done ellipse{fill:#ddd}
g.node.freed ellipse{fill:#eee}
g.edge.saved.released path{stroke:#ccc;stroke-dasharray:2,4;opacity:.4}
g.edge.saved:not(.released) path{stroke:#1565c0}
pre#eqs{font-size:12px;white-space:pre-wrap;background:#fafafa;padding:6px}
"""

_SCRIPT = r"""
(function(){
const DATA = JSON.parse(document.getElementById('data').textContent);
const steps = DATA.steps;
const svg = document.querySelector('#canvas svg');
const byId = id => svg.querySelector('g[id="' + CSS.escape(id) + '"]');
const info = document.getElementById('info');
// Fit the whole graph to the window (the viewBox scales); "1:1" shows it at its natural size.
const natural = [svg.getAttribute('width'), svg.getAttribute('height')];
function fit(on){
  svg.setAttribute('width', on ? '100%' : natural[0]); svg.setAttribute('height', on ? '100%' : natural[1]);
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet'); svg.style.display = 'block';
  svg.dataset.fit = on ? '1' : '0';
}
fit(true);
document.getElementById('fit').onclick = () => fit(true);
document.getElementById('actual').onclick = () => fit(false);
let selected = null;
function row(k, v){ return '<tr><td>' + k + '</td><td class="eq">' + esc(v) + '</td></tr>'; }
function esc(s){ return String(s).replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c])); }
function show(id){
  const d = DATA.info[id]; if(!d) return;
  let h = '<table>' + row('kind', d.kind) + row('name', d.name) + row('op', d.op) + row('shape', d.shape)
        + row('dtype', d.dtype) + row('source', d.source);
  if(d.saved) h += row('saved for backward', d.saved);
  if(d.value) h += row('value', d.value);
  h += row('forward', d.forward || '—') + row('backward', d.backward || '—') + '</table>';
  info.innerHTML = h; info.dataset.node = id;
}
svg.querySelectorAll('g.node').forEach(g => {
  g.addEventListener('mouseenter', () => show(g.id));
  g.addEventListener('mouseleave', () => { if(selected) show(selected); });
  g.addEventListener('click', () => {
    if(selected){ const s = byId(selected); if(s) s.classList.remove('selected'); }
    selected = g.id; g.classList.add('selected'); show(g.id);
  });
});
// Replay: which nodes hold which saved arrays, reference-counted (an array kept by two nodes is counted once).
const holders = {}; const size = {};
steps.forEach(s => s.items.forEach(([k, n]) => { holders[k] = (holders[k] || 0) + 1; size[k] = n; }));
const total0 = Object.keys(size).reduce((a, k) => a + size[k], 0);
let k = 0;
const status = document.getElementById('status'), bytes = document.getElementById('bytes');
const slider = document.getElementById('slider'); slider.max = steps.length;
function human(n){
  const u = ['B', 'KB', 'MB', 'GB']; let i = 0;
  while(Math.abs(n) >= 1024 && i < 3){ n /= 1024; i++; }
  return i ? n.toFixed(1) + ' ' + u[i] : n + ' B';
}
function render(){
  svg.querySelectorAll('.current,.done,.freed').forEach(e => e.classList.remove('current','done','freed'));
  svg.querySelectorAll('g.edge.saved').forEach(e => e.classList.remove('released'));
  const left = Object.assign({}, holders); let held = total0;
  for(let i = 0; i < k; i++){
    const s = steps[i];
    const b = byId('b' + s.seq); if(b) b.classList.add(i === k - 1 ? 'current' : 'done');
    const o = byId('op' + s.seq); if(o) o.classList.add(i === k - 1 ? 'current' : 'done');
    if(i === k - 1){ const gv = byId('g_v' + s.seq); if(gv) gv.classList.add('current'); }
    if(s.released){
      s.items.forEach(([key, n]) => { left[key]--; if(left[key] === 0) held -= n; });
      svg.querySelectorAll('g.edge.saved').forEach(e => {
        if(e.id.endsWith('=>b' + s.seq)) e.classList.add('released');
      });
      if(o) o.classList.add('freed');
    }
  }
  // The operators' "alive"/"released" labels follow the replay too.
  const freedNow = new Set(steps.slice(0, k).filter(s => s.released).map(s => s.seq));
  steps.forEach(s => {
    const o = byId('op' + s.seq); if(!o) return;
    const texts = o.querySelectorAll('text'); const last = texts[texts.length - 1];
    if(last && (last.textContent === 'alive' || last.textContent === 'released'))
      last.textContent = freedNow.has(s.seq) ? 'released' : 'alive';
  });
  const cur = k ? steps[k - 1] : null;
  status.textContent = cur
    ? ('step ' + k + ' of ' + steps.length + ': rules of ' + cur.name + ' (node ' + cur.seq + ')'
       + (cur.released ? ', saved arrays released' : ', saved arrays kept (retain_graph)'))
                           : ('before backward: ' + steps.length + ' steps');
  status.dataset.step = k; status.dataset.seq = cur ? cur.seq : '';
  bytes.textContent = human(held); bytes.dataset.bytes = held; slider.value = k;
  if(cur){ show('b' + cur.seq); }
}
document.getElementById('next').onclick = () => { if(k < steps.length){ k++; render(); } };
document.getElementById('prev').onclick = () => { if(k > 0){ k--; render(); } };
document.getElementById('reset').onclick = () => { k = 0; render(); };
let timer = null;
document.getElementById('play').onclick = () => {
  if(timer){ clearInterval(timer); timer = null; return; }
  timer = setInterval(() => {
    if(k >= steps.length){ clearInterval(timer); timer = null; return; }
    k++; render();
  }, 600);
};
slider.oninput = () => { k = +slider.value; render(); };
document.addEventListener('keydown', e => {
  if(e.key === 'ArrowRight') document.getElementById('next').click();
  if(e.key === 'ArrowLeft') document.getElementById('prev').click();
});
render();
})();
"""

# Defence in depth: the page may run its own script (by hash) and nothing else, and load nothing.
CSP = (
    "default-src 'none'; script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    + "'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>{style}</style></head>
<body>
<div id="canvas">{svg}</div>
<div id="side">
<h2>{title}</h2>
<p>Hover or click a node. Step through backpropagation in the order the engine ran it ({caption}).</p>
<div id="controls">
<button id="reset" title="before backward">reset</button><button id="prev" title="previous step (←)">◀</button>
<button id="next" title="next step (→)">▶</button><button id="play" title="play / pause">play</button>
<button id="fit" title="fit the graph to the window">fit</button><button id="actual" title="natural size">1:1</button>
<input id="slider" type="range" min="0" value="0" style="width:100%">
<div id="status"></div>
<div>saved arrays still held: <span id="bytes"></span></div>
</div>
<h2>Node</h2>
<div id="info">(hover or click a node)</div>
<details><summary>All equations</summary><pre id="eqs">{equations}</pre></details>
</div>
<script id="data" type="application/json">{data}</script>
<script>{script}</script>
</body></html>
"""
