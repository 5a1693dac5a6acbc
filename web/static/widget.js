/*
 * Knowledge-base QA widget: <script src="http://HOST:PORT/widget.js" defer></script>
 * (add data-kb="NAME" to ask knowledge base NAME instead of the default one).
 *
 * Adds a floating "问答" button that opens a small panel. Questions go to POST /api/ask on
 * the server this script was loaded from, with the panel's conversation so far as "history"
 * (so follow-ups work; within the server's bounds, filled in below when it serves this file);
 * answers show clickable [n] marks that expand the cited passage (title, date, section, the
 * passage with the cited sentences highlighted), and the question as the server understood a
 * follow-up ("理解为：…").
 *
 * Labels are Chinese, or English with data-lang="en" on the script tag or <html lang="en…">
 * on the page.
 *
 * A page on another origin can only read the answers if the server allows that origin
 * (CORS): list it in the server's allowed_origins (KB_ALLOWED_ORIGINS). Out of the box only
 * pages of the server's own origin may.
 *
 * No dependencies. The UI lives in a shadow root so the host page's CSS cannot break it
 * and ours cannot leak out. Document text is untrusted: it is only ever inserted with
 * textContent / text nodes, never innerHTML.
 */
(function () {
  "use strict";
  if (window.__kbqaWidgetLoaded) return; // included twice: one button is enough
  window.__kbqaWidgetLoaded = true;

  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var ASK_URL = origin + "/api/ask";
  var KB = script && script.getAttribute("data-kb"); // none: the server's default knowledge base
  // The app's bounds on "history" (settings.max_history_messages / max_history_chars).
  var LIMITS = { messages: 40, chars: 12000 }; // filled in by web/widget.py

  var TEXTS = {
    zh: { open: "问答", title: "知识库问答", close: "关闭", placeholder: "输入问题，回车发送", send: "发送",
          pending: "正在查找…", error: "出错了：", understood: "理解为：",
          unreachable: "暂时连不上问答服务，请稍后再试。" },
    en: { open: "Ask", title: "Knowledge-base Q&A", close: "Close", placeholder: "Ask a question, press Enter",
          send: "Send", pending: "Searching…", error: "Something went wrong: ", understood: "Understood as: ",
          unreachable: "The Q&A service can't be reached right now. Please try again later." },
  };
  var lang = (script && script.getAttribute("data-lang")) || document.documentElement.lang || "";
  var T = /^en\b/i.test(lang) ? TEXTS.en : TEXTS.zh;

  var CSS = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; font-family: system-ui, -apple-system, 'PingFang SC', 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif; }",
    ".fab { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; border: 0; border-radius: 24px;",
    "  padding: 12px 20px; font-size: 16px; color: #fff; background: #ea580c; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); }",
    ".panel { position: fixed; right: 20px; bottom: 76px; z-index: 2147483000; width: min(380px, calc(100vw - 40px));",
    "  height: min(560px, calc(100vh - 110px)); display: none; flex-direction: column; background: #fff; color: #1f2937;",
    "  border-radius: 12px; box-shadow: 0 10px 30px rgba(0,0,0,.25); overflow: hidden; font-size: 14px; line-height: 1.6; }",
    ".panel.open { display: flex; }",
    ".head { padding: 10px 14px; background: #ea580c; color: #fff; font-weight: 600; display: flex; justify-content: space-between; }",
    ".head button { background: none; border: 0; color: #fff; font-size: 18px; cursor: pointer; line-height: 1; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px; }",
    ".q { margin: 8px 0 4px auto; max-width: 85%; width: fit-content; background: #ffedd5; padding: 6px 10px; border-radius: 10px; white-space: pre-wrap; }",
    ".a { margin: 4px 0 10px; background: #f3f4f6; padding: 8px 10px; border-radius: 10px; white-space: pre-wrap; }",
    ".a.none, .a.err { color: #6b7280; }",
    ".a.err { color: #b91c1c; }",
    ".understood { margin: -2px 0 4px; font-size: 12px; color: #6b7280; }",
    ".cite { border: 0; background: none; color: #c2410c; font-weight: 600; cursor: pointer; padding: 0 1px; font-size: inherit; }",
    ".cite[aria-expanded=true] { text-decoration: underline; }",
    ".src { margin-top: 6px; padding: 6px 8px; border-left: 3px solid #fb923c; background: #fff; font-size: 13px; }",
    ".meta { color: #6b7280; margin-bottom: 4px; }",
    ".meta b { color: #1f2937; }",
    "mark { background: #fde68a; color: inherit; }",
    "form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #e5e7eb; }",
    "textarea { flex: 1; resize: none; height: 40px; padding: 8px; border: 1px solid #d1d5db; border-radius: 8px; font-size: 14px; }",
    "form button { border: 0; border-radius: 8px; padding: 0 14px; background: #ea580c; color: #fff; cursor: pointer; }",
    "form button:disabled { background: #fdba74; cursor: wait; }",
  ].join("\n");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  // The cited passage with each cited sentence in a <mark>; spans are document offsets.
  function passageNode(c) {
    var p = el("div");
    var text = c.text || "";
    var offset = c.passage_start || 0;
    var pos = 0;
    var spans = (c.spans && c.spans.length ? c.spans : [[c.start, c.end]]).slice().sort(function (x, y) { return x[0] - y[0]; });
    spans.forEach(function (span) {
      var s = Math.max(span[0] - offset, pos), e = Math.min(span[1] - offset, text.length);
      if (s >= e) return;
      p.appendChild(document.createTextNode(text.slice(pos, s)));
      p.appendChild(el("mark", null, text.slice(s, e)));
      pos = e;
    });
    p.appendChild(document.createTextNode(text.slice(pos)));
    return p;
  }

  function sourceNode(c) {
    var box = el("div", "src");
    var meta = el("div", "meta");
    meta.appendChild(el("b", null, "[" + c.n + "] " + (c.title || c.doc_id)));
    [c.date, c.section, c.source].forEach(function (part) {
      if (part) meta.appendChild(document.createTextNode(" · " + part));
    });
    box.appendChild(meta);
    box.appendChild(passageNode(c));
    return box;
  }

  // Answer text with each [n] turned into a button that toggles citation n below the answer.
  function answerNode(data) {
    var box = el("div", data.found ? "a" : "a none");
    var byN = {};
    (data.citations || []).forEach(function (c) { byN[c.n] = c; });
    var opened = {};
    var parts = String(data.answer || "").split(/\[(\d+)\]/);
    parts.forEach(function (part, i) {
      if (i % 2 === 0) { box.appendChild(document.createTextNode(part)); return; }
      var c = byN[part];
      if (!c) { box.appendChild(document.createTextNode("[" + part + "]")); return; }
      var btn = el("button", "cite", "[" + part + "]");
      btn.type = "button";
      btn.setAttribute("aria-expanded", "false");
      btn.addEventListener("click", function () {
        if (opened[part]) {
          opened[part].remove();
          delete opened[part];
        } else {
          opened[part] = box.appendChild(sourceNode(c));
        }
        btn.setAttribute("aria-expanded", String(!!opened[part]));
      });
      box.appendChild(btn);
    });
    return box;
  }

  var host = el("div");
  host.id = "kbqa-widget";
  // The host element lives in the page's DOM, where the page's own rules reach it (a
  // "div { border: ... }" drew a stray mark); ":host" in the shadow CSS loses to them, an
  // inline !important declaration does not.
  host.style.setProperty("all", "initial", "important");
  var root = host.attachShadow({ mode: "open" });
  root.appendChild(el("style", null, CSS));

  var fab = el("button", "fab", T.open);
  fab.type = "button";
  fab.setAttribute("aria-expanded", "false");
  var panel = el("div", "panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", T.title);
  var head = el("div", "head");
  head.appendChild(el("span", null, T.title));
  var close = el("button", null, "×");
  close.type = "button";
  close.setAttribute("aria-label", T.close);
  head.appendChild(close);
  var log = el("div", "log");
  var form = el("form");
  var input = el("textarea");
  input.placeholder = T.placeholder;
  input.maxLength = 2000;
  var send = el("button", null, T.send);
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(fab);

  function toggle(open) {
    panel.classList.toggle("open", open);
    fab.setAttribute("aria-expanded", String(open));
    if (open) input.focus();
  }
  fab.addEventListener("click", function () { toggle(!panel.classList.contains("open")); });
  close.addEventListener("click", function () { toggle(false); });

  // The conversation so far, as plain text (each question and the answer's text), oldest first.
  var history = [];

  // The newest messages within the app's bounds, a question and its answer dropped together.
  function bounded(messages) {
    var kept = messages.slice(Math.max(0, messages.length - LIMITS.messages));
    if (kept.length % 2) kept = kept.slice(1);
    var chars = function () { return kept.reduce(function (n, m) { return n + m.content.length; }, 0); };
    while (kept.length && chars() > LIMITS.chars) kept = kept.slice(2);
    return kept;
  }

  function ask(question) {
    log.appendChild(el("div", "q", question));
    var pending = log.appendChild(el("div", "a none", T.pending));
    log.scrollTop = log.scrollHeight;
    send.disabled = true;
    fetch(ASK_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(KB ? { question: question, history: bounded(history), kb: KB }
                              : { question: question, history: bounded(history) }),
    })
      .then(function (resp) {
        return resp.json().then(function (data) {
          if (!resp.ok) throw new Error(data && data.error ? data.error : "HTTP " + resp.status);
          return data;
        });
      })
      .then(function (data) {
        var reply = answerNode(data);
        var standalone = String(data.standalone_question || "");
        if (standalone && standalone !== question) {
          log.insertBefore(el("div", "understood", T.understood + standalone), pending);
        }
        log.replaceChild(reply, pending);
        history = bounded(history.concat([
          { role: "user", content: question },
          { role: "assistant", content: String(data.answer || "") },
        ]));
      })
      .catch(function (err) {
        if (err instanceof TypeError) {
          // fetch() rejects with a TypeError when no reply could be read: the server is down, or
          // (most often, on another site) its CORS policy does not allow this page's origin. The
          // visitor gets a kind sentence; the site owner, in the console, what to do.
          console.warn("kbqa widget: no answer from " + ASK_URL + " (" + err.message + "). If the server is up, " +
            "it does not allow this page's origin " + location.origin + ": add it to the server's " +
            "KB_ALLOWED_ORIGINS (e.g. KB_ALLOWED_ORIGINS=" + location.origin + ") and restart it. " +
            "See " + origin + "/widget.");
          log.replaceChild(el("div", "a err", T.unreachable), pending);
        } else {
          log.replaceChild(el("div", "a err", T.error + err.message), pending);
        }
      })
      .finally(function () {
        send.disabled = false;
        log.scrollTop = log.scrollHeight;
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var question = input.value.trim();
    if (!question || send.disabled) return;
    input.value = "";
    ask(question);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { // isComposing: IME (拼音) confirm
      event.preventDefault();
      form.requestSubmit();
    }
  });

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
