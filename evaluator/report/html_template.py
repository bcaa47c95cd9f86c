"""The page of report.html: markup, style and the gallery script (no network resources)."""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ · poster-frame evaluation</title>
<style>
:root { --hit:#1a7f37; --nt:#bf8700; --ns:#8250df; --far:#cf222e; --muted:#57606a;
        --line:#d0d7de; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1f2328; background: #fff; }
header, main { max-width: 1280px; margin: 0 auto; padding: 12px 20px; }
header h1 { font-size: 22px; margin: 8px 0 2px; }
.sub { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 150px;
        background: var(--bg); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; }
.card .value { font-size: 26px; font-weight: 600; }
.card .ci { color: var(--muted); font-size: 12px; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
ul.counts { margin: 0; padding-left: 18px; }
table { border-collapse: collapse; }
td, th { padding: 2px 8px; text-align: left; border-bottom: 1px solid var(--line); }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; flex: 1 1 520px; max-width: 620px; }
.plots img { width: 100%; border: 1px solid var(--line); }
.row > div { flex: 1 1 380px; max-width: 620px; }
figcaption { color: var(--muted); font-size: 12px; }
.controls { position: sticky; top: 0; background: #fff; padding: 8px 0;
            border-bottom: 1px solid var(--line); display: flex; gap: 10px; flex-wrap: wrap;
            align-items: center; z-index: 2; }
.controls input, .controls select, .controls button { font: inherit; padding: 3px 8px; }
.legend span { margin-right: 10px; white-space: nowrap; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
       vertical-align: middle; margin-right: 3px; }
.video { border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; padding: 8px 12px; }
.video.miss { border-left: 5px solid var(--far); }
.video.hit { border-left: 5px solid var(--hit); }
.vhead { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.vid { font-weight: 600; font-family: ui-monospace, monospace; }
.badge { border-radius: 10px; padding: 0 8px; color: #fff; font-size: 12px; }
.badge.hit { background: var(--hit); } .badge.miss { background: var(--far); }
svg.strip { width: 100%; height: 64px; display: block; }
.frames { display: grid; grid-template-columns: 70px 1fr; gap: 4px 8px; margin-top: 6px; }
.frames .lab { color: var(--muted); font-size: 12px; padding-top: 4px; }
.thumbs { display: flex; gap: 6px; overflow-x: auto; }
.thumb { text-align: center; font-size: 11px; color: var(--muted); }
.thumb img { display: block; border: 3px solid var(--line); border-radius: 4px; }
.thumb.s0 img, .thumb.e1 img { border-color: var(--hit); }
.thumb.s1 img { border-color: var(--nt); } .thumb.s2 img { border-color: var(--ns); }
.thumb.s3 img { border-color: var(--far); }
table.mf { font-size: 12px; margin-top: 6px; }
table.mf td.st { font-weight: 600; }
.pager { display: flex; gap: 8px; align-items: center; margin: 10px 0; }
.empty { color: var(--muted); padding: 20px 0; }
.warning { background: #fff4e5; border-left: 4px solid #e67700; padding: 8px 12px; }
table.slices td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.slices tr.small td { color: var(--muted); }
</style>
</head>
<body>
<header>
<h1>Poster frames: __TITLE__</h1>
<div class="sub">__SETTINGS__</div>
<div class="sub">__META__</div>
</header>
<main>
__WARNINGS__
<section class="cards">__CARDS__</section>
<section class="row">
<div><h3>Test set</h3><ul class="counts">__COUNTS__</ul></div>
<div><h3>Outcome of the scored videos</h3>
<table><tr><th>outcome</th><th>videos</th><th>share</th></tr>__REASONS__</table>
<p class="sub">similarity: a frame close enough in time was not similar enough;
time: a similar frame was too far in time; time+similarity: both kinds, never one frame
that is both; neither: nothing close in time or similar.</p></div>
</section>
<section class="plots">__PLOTS__</section>
__SLICES__
<section id="gallery">
<h2>Videos</h2>
<div class="controls">
<input id="q" type="search" placeholder="search video id" aria-label="search video id">
<select id="filter" aria-label="filter">
<option value="all">all videos</option>
<option value="miss">misses</option>
<option value="hit">hits</option>
</select>
<select id="slice" aria-label="slice" hidden><option value="">all slices</option></select>
<span class="legend">
<span><i class="dot" style="background:var(--hit)"></i>hit</span>
<span><i class="dot" style="background:var(--nt)"></i>near miss: in time, not similar</span>
<span><i class="dot" style="background:var(--ns)"></i>near miss: similar, not in time</span>
<span><i class="dot" style="background:var(--far)"></i>far</span>
<span>▮ expert frame (green: matched)</span>
</span>
</div>
<div class="pager" id="pager-top"></div>
<div id="videos"><noscript>The gallery needs JavaScript.</noscript></div>
<div class="pager" id="pager-bottom"></div>
</section>
</main>
<script type="application/json" id="report-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var C = D.cols;
  // Columns in, one light object per video; frames are expanded only for the page shown.
  D.videos = C.id.map(function (id, i) { return { id: id, hit: C.hit[i], why: C.why[i], i: i }; });
  function frames(v) {
    if (!v.e) {
      var e = [], m = [], j;
      for (j = C.eo[v.i]; j < C.eo[v.i + 1]; j++) e.push([C.e_ts[j], C.e_hit[j], C.e_th[j]]);
      for (j = C.mo[v.i]; j < C.mo[v.i + 1]; j++) {
        m.push([C.m_rank[j], C.m_ts[j], C.m_st[j], C.m_dt[j], C.m_cos[j], C.m_et[j], C.m_th[j]]);
      }
      v.e = e; v.m = m;
    }
    return v;
  }
  var S = D.settings, STATUS = ["hit", "near miss (in time, not similar)",
    "near miss (similar, not in time)", "far"];
  var COLORS = ["var(--hit)", "var(--nt)", "var(--ns)", "var(--far)"];
  var state = { q: "", filter: "all", slice: "", page: 0 };
  var sBox = document.getElementById("slice"), SL = D.slices;
  if (SL) {
    sBox.hidden = false;
    SL.columns.forEach(function (col, c) {
      var g = document.createElement("optgroup");
      g.label = col;
      SL.values[c].forEach(function (val, code) {
        var o = document.createElement("option");
        o.value = c + ":" + code; o.textContent = col + " = " + val; g.appendChild(o);
      });
      sBox.appendChild(g);
    });
  }
  var qBox = document.getElementById("q"), fBox = document.getElementById("filter");
  D.reasons.forEach(function (r) {
    var o = document.createElement("option");
    o.value = "reason:" + r; o.textContent = "miss: " + r; fBox.appendChild(o);
  });
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function num(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
  function keep(v) {
    if (state.q && v.id.toLowerCase().indexOf(state.q) < 0) return false;
    if (state.slice) {
      var sc = state.slice.split(":");
      if (SL.codes[Number(sc[0])][v.i] !== Number(sc[1])) return false;
    }
    if (state.filter === "hit") return v.hit > 0;
    if (state.filter === "miss") return v.hit === 0;
    if (state.filter.indexOf("reason:") === 0) return v.why === state.filter.slice(7);
    return true;
  }
  function strip(v) {
    var tol = S.time_tolerance_s, hi = 1;
    v.e.forEach(function (e) { hi = Math.max(hi, e[0] + tol); });
    v.m.forEach(function (m) { hi = Math.max(hi, m[1] + tol); });
    var W = 1000, x = function (t) { return 8 + (W - 16) * t / hi; }, out = [];
    out.push('<svg class="strip" viewBox="0 0 ' + W + ' 64" preserveAspectRatio="none">');
    out.push('<line x1="8" y1="32" x2="' + (W - 8) + '" y2="32" stroke="#d0d7de"/>');
    v.e.forEach(function (e) {
      var a = x(Math.max(0, e[0] - tol)), b = x(e[0] + tol);
      out.push('<rect x="' + a + '" y="4" width="' + (b - a) + '" height="24" fill="' +
        (e[1] ? "#dafbe1" : "#eaeef2") + '" opacity="0.7"/>');
    });
    v.e.forEach(function (e) {
      out.push('<rect x="' + (x(e[0]) - 2) + '" y="4" width="4" height="24" fill="' +
        (e[1] ? "#1a7f37" : "#57606a") + '"><title>expert frame at ' + num(e[0], 2) +
        " s" + (e[1] ? " (matched)" : "") + "</title></rect>");
    });
    v.m.forEach(function (m) {
      out.push('<g><circle cx="' + x(m[1]) + '" cy="46" r="8" fill="' + COLORS[m[2]] +
        '"/><text x="' + x(m[1]) + '" y="50" font-size="10" text-anchor="middle" fill="#fff">' +
        m[0] + "</text><title>rank " + m[0] + " at " + num(m[1], 2) + " s: " +
        STATUS[m[2]] + ", dt " + num(m[3], 2) + " s, cosine " + num(m[4], 3) +
        "</title></g>");
    });
    out.push('<text x="8" y="62" font-size="10" fill="#57606a">0 s</text>');
    out.push('<text x="' + (W - 8) + '" y="62" font-size="10" fill="#57606a" ' +
      'text-anchor="end">' + num(hi, 1) + " s</text></svg>");
    return out.join("");
  }
  function thumbs(v) {
    var any = v.e.some(function (e) { return e[2] >= 0; }) ||
      v.m.some(function (m) { return m[6] >= 0; });
    if (!any) return "";
    function img(i) {
      return i >= 0 ? '<img loading="lazy" alt="" src="' + D.thumbs[i] + '">' :
        '<div style="height:96px;width:96px;background:#eaeef2"></div>';
    }
    var ex = v.e.map(function (e) {
      return '<div class="thumb e' + e[1] + '">' + img(e[2]) + num(e[0], 1) + " s</div>";
    }).join("");
    var mo = v.m.map(function (m) {
      return '<div class="thumb s' + m[2] + '" title="' + esc(STATUS[m[2]]) + '">' +
        img(m[6]) + "#" + m[0] + " · " + num(m[1], 1) + " s<br>dt " + num(m[3], 1) +
        (m[4] === null ? "" : " · cos " + num(m[4], 2)) + "</div>";
    }).join("");
    return '<div class="frames"><div class="lab">expert</div><div class="thumbs">' + ex +
      '</div><div class="lab">model</div><div class="thumbs">' + mo + "</div></div>";
  }
  function frameTable(v) {
    if (!v.m.length) return '<div class="sub">The model returned no frames for this video.</div>';
    var rows = v.m.map(function (m) {
      return "<tr><td>" + m[0] + "</td><td>" + num(m[1], 2) + '</td><td class="st" ' +
        'style="color:' + COLORS[m[2]] + '">' + esc(STATUS[m[2]]) + "</td><td>" +
        num(m[3], 2) + "</td><td>" + num(m[4], 3) + "</td><td>" + num(m[5], 2) + "</td></tr>";
    }).join("");
    return '<table class="mf"><tr><th>rank</th><th>t (s)</th><th>frame</th><th>|dt| (s)</th>' +
      "<th>cosine</th><th>expert t (s)</th></tr>" + rows + "</table>";
  }
  function card(v) {
    var hit = v.hit > 0;
    var badge = hit ? '<span class="badge hit">hit at rank ' + v.hit + "</span>" :
      '<span class="badge miss">miss: ' + esc(v.why) + "</span>";
    return '<article class="video ' + (hit ? "hit" : "miss") + '" data-video="' + esc(v.id) +
      '"><div class="vhead"><span class="vid">' + esc(v.id) + "</span>" + badge +
      '<span class="sub">' + v.e.length + " expert frames · " + v.m.length +
      " model frames</span></div>" + strip(v) + thumbs(v) + frameTable(v) + "</article>";
  }
  function pager(n, pages) {
    var first = state.page * D.page_size;
    return '<button data-go="-1"' + (state.page === 0 ? " disabled" : "") + ">‹ previous</button>" +
      "<span>page " + (pages ? state.page + 1 : 0) + " of " + pages + " · videos " +
      (n ? first + 1 : 0) + "–" + Math.min(n, first + D.page_size) + " of " + n + "</span>" +
      '<button data-go="1"' + (state.page >= pages - 1 ? " disabled" : "") + ">next ›</button>";
  }
  function render() {
    var shown = D.videos.filter(keep), n = shown.length;
    var pages = Math.ceil(n / D.page_size);
    state.page = Math.max(0, Math.min(state.page, pages - 1));
    var slice = shown.slice(state.page * D.page_size, (state.page + 1) * D.page_size).map(frames);
    document.getElementById("videos").innerHTML = n ? slice.map(card).join("") :
      '<div class="empty">No video matches the search and filter.</div>';
    var p = pager(n, pages);
    document.getElementById("pager-top").innerHTML = p;
    document.getElementById("pager-bottom").innerHTML = p;
    document.body.setAttribute("data-rendered", String(slice.length));
    document.body.setAttribute("data-matching", String(n));
  }
  qBox.addEventListener("input", function () {
    state.q = qBox.value.trim().toLowerCase(); state.page = 0; render();
  });
  fBox.addEventListener("change", function () {
    state.filter = fBox.value; state.page = 0; render();
  });
  sBox.addEventListener("change", function () {
    state.slice = sBox.value; state.page = 0; render();
  });
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.getAttribute && t.getAttribute("data-go")) {
      state.page += Number(t.getAttribute("data-go")); render();
      document.getElementById("gallery").scrollIntoView();
    } else if (t.getAttribute && t.getAttribute("data-slice") !== null) {
      sBox.value = t.getAttribute("data-slice"); state.slice = sBox.value; state.page = 0;
      render();
    } else if (t.getAttribute && t.getAttribute("data-filter")) {
      fBox.value = t.getAttribute("data-filter"); state.filter = fBox.value; state.page = 0;
      render();
    }
  });
  render();
})();
</script>
</body>
</html>
"""
