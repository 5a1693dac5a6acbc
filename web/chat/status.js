// The chat's own words where Gradio has none or English ones (KB_WORDS: web/i18n.py, both
// languages; the page's language is the one its 中文 / English switch does not offer).
(function () {
  var lang = function () {
    var button = document.querySelector("#kb-lang");
    return button && button.textContent.trim() === "中文" ? "en" : "zh";
  };
  var say = function (name, slots) {
    return KB_WORDS[lang()][name].replace(/\{(\w+)\}/g, function (_, slot) { return String((slots || {})[slot]); });
  };

  // A question that never reached the answerer: the queue refused it (429: the rate limit or
  // the per-client bound; 503: the queue stopped) or the server could not be reached. Gradio
  // then shows a bare "Error" or a timer that never stops; the visitor reads what happened
  // and what to do, under the chat. The question stays in its box: nothing cleared it.
  var alertBox = function () {
    var box = document.getElementById("kb-alert");
    var chat = document.getElementById("kb-chat");
    if (!box && chat) {
      box = document.createElement("div");
      box.id = "kb-alert";
      box.setAttribute("role", "alert");
      chat.insertAdjacentElement("afterend", box);
    }
    return box;
  };
  var show = function (message) {
    var box = alertBox();
    if (box) box.textContent = message;
  };
  var CHAT_EVENTS = ["ask", "ask_example"];
  var chatEvent = function (url, options) {
    if (!/\/queue\/join(\?|$)/.test(String(url)) || !options || typeof options.body !== "string") return false;
    try {
      var fn = JSON.parse(options.body).fn_index;
      var events = (window.gradio_config && window.gradio_config.dependencies) || [];
      return events.some(function (event) { return event.id === fn && CHAT_EVENTS.indexOf(event.api_name) >= 0; });
    } catch (e) {
      return false;
    }
  };
  var pageFetch = window.fetch;
  window.fetch = function (url, options) {
    var asked = chatEvent(url, options);
    var sent = pageFetch.apply(this, arguments);
    if (!asked) return sent;
    return sent.then(function (response) {
      if (response.ok) show("");
      else if (response.status === 429) show(say("busy", {seconds: response.headers.get("retry-after") || 5}));
      else if (response.status === 503) show(say("unavailable"));
      else show(say("not_sent", {status: response.status}));
      return response;
    }, function (error) {
      show(say("offline"));
      throw error;
    });
  };

  // Each message's accessible name: Gradio writes "bot's message: " and the message's raw
  // HTML (<div class="kb-answer">…); a screen reader reads its text, named in the page's
  // language. The conversation's own name follows the page's language too.
  var PREFIX = /^(bot|user)'s message: /;
  var name = function () {
    document.querySelectorAll("#kb-chat [aria-label]").forEach(function (node) {
      var label = node.getAttribute("aria-label");
      var role = PREFIX.exec(label);
      var wanted = null;
      if (role) wanted = say(role[1] === "bot" ? "answer_said" : "question_said", {text: node.textContent.replace(/\s+/g, " ").trim()});
      else if (node.getAttribute("role") === "log") wanted = say("chat_label");
      if (wanted !== null && wanted !== label) node.setAttribute("aria-label", wanted);
    });
    var pageLang = lang() === "en" ? "en" : "zh-CN";
    if (document.documentElement.lang !== pageLang) document.documentElement.lang = pageLang;
  };
  var pending = false;
  new MutationObserver(function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; name(); });
  }).observe(document.documentElement, {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["aria-label"]});
})();
