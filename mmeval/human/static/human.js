// The inspector's page: keys in, answers out. The server keeps every answer (this page holds only the one
// being sent, in localStorage until the server has it), so reloading or closing the tab loses nothing.
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const base = "/a/" + encodeURIComponent(cfg.annotator);
  const PENDING = "mmeval-human-pending:" + cfg.annotator;
  const IDLE_MS = cfg.idle_after * 1000;
  const $ = (id) => document.getElementById(id);

  let state = null;        // the server's view: total, answered, next, detection_open, practice ...
  let mode = "loading";    // guidelines | practice | feedback | message | question | finished
  let item = null;         // the question on screen
  let busy = false;        // an answer is being saved: keys wait
  let onContinue = null;   // what Enter does on a message screen
  let practiceNext = 0;
  const items = new Map(); // n -> promise of the question (the next one is fetched ahead)
  const preloaded = [];    // images of the next question, kept referenced while they load

  // ------------------------------------------------------------------ time per answer, measured here
  let shownAt = null, hiddenMs = 0, idleMs = 0, lastInput = 0, hiddenAt = null, hiddenSinceInput = 0;
  const now = () => performance.now();

  function noteInput() {
    const t = now();
    if (shownAt !== null) {
      const visibleGap = t - lastInput - hiddenSinceInput;
      if (visibleGap > IDLE_MS) idleMs += visibleGap - IDLE_MS;
    }
    lastInput = t;
    hiddenSinceInput = 0;
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      hiddenAt = now();
    } else if (hiddenAt !== null) {
      const span = now() - hiddenAt;
      hiddenAt = null;
      if (shownAt !== null) { hiddenMs += span; hiddenSinceInput += span; }
    }
  });
  for (const kind of ["pointermove", "pointerdown", "wheel"]) {
    document.addEventListener(kind, noteInput, {passive: true});
  }

  function startClock() {
    shownAt = now();
    hiddenMs = 0; idleMs = 0; hiddenSinceInput = 0; lastInput = shownAt;
    hiddenAt = document.visibilityState === "hidden" ? shownAt : null;
  }

  // ------------------------------------------------------------------ the server
  function url(path) {
    return base + path + (cfg.token ? (path.includes("?") ? "&" : "?") + "t=" + encodeURIComponent(cfg.token) : "");
  }

  async function api(path, body) {
    const init = body === undefined ? {cache: "no-store"}
      : {method: "POST", cache: "no-store", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    const res = await fetch(url(path), init);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && (data.error || data.detail)) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // an answer is kept in localStorage until the server confirms it; sent again while the server is away
  async function send(body) {
    localStorage.setItem(PENDING, JSON.stringify(body));
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await api("/answer", body);
        localStorage.removeItem(PENDING);
        status("");
        return res;
      } catch (err) {
        if (err.status !== undefined) { localStorage.removeItem(PENDING); throw err; }
        status("cannot reach the server: your answer is kept and sent when it is back …");
        await sleep(Math.min(5000, 500 * (attempt + 1)));
      }
    }
  }

  async function flushPending() {
    const raw = localStorage.getItem(PENDING);
    if (!raw) return;
    try { await send(JSON.parse(raw)); } catch (err) { /* already closed or answered: the server decides */ }
    localStorage.removeItem(PENDING);
  }

  function status(text) { $("status").textContent = text; }

  // ------------------------------------------------------------------ screens
  function show(screen) {
    for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== screen;
    document.body.dataset.mode = mode;
  }

  function progress() {
    if (!state) return;
    $("progress").value = state.answered;
    $("where").textContent = state.answered + " / " + state.total + " answered";
  }

  function message(title, text, next) {
    mode = "message";
    $("message-title").textContent = title;
    $("message-text").textContent = text;
    $("message-go").hidden = !next;
    onContinue = next;
    show("message");
  }

  function guidelines() {
    mode = "guidelines";
    show("guidelines");
  }

  function finished() {
    mode = "finished";
    progress();
    message("All done", "You answered all " + state.total + " questions. Thank you! You can close this tab.", null);
    mode = "finished";
    document.body.dataset.mode = mode;
  }

  function blockText() {
    return "The detection block: " + state.detection_total + " questions asking whether the product has a defect. " +
      "Once it is finished you cannot return to it.";
  }

  async function begin() {
    if (!state.practice_done) {
      practiceNext = state.practice_next;
      return practice(practiceNext);
    }
    if (state.finished) return finished();
    if (state.answered === 0 && state.detection_total > 0) {
      return message("The questions", blockText(), () => goTo(state.next));
    }
    return goTo(state.next);
  }

  // ------------------------------------------------------------------ one question on screen
  function fetchItem(n) {
    if (!items.has(n)) {
      items.set(n, api("/item/" + n).catch((err) => { items.delete(n); throw err; }));
    }
    return items.get(n);
  }

  const blockOf = (n) => (n < cfg.detection_total ? "detection" : "main");

  function preload(n) {
    if (n >= state.total) return;
    if (blockOf(n) === "main" && state.detection_open) return;  // not shown before the block closes
    fetchItem(n).then((next) => {
      preloaded.length = 0;
      for (const im of next.images) {
        const img = new Image();
        img.src = im.url;
        preloaded.push(img);
      }
    }).catch(() => {});
  }

  async function goTo(n) {
    mode = "loading";
    try {
      render(await fetchItem(n), "question");
    } catch (err) {
      return recover(err);
    }
    preload(n + 1);
  }

  async function practice(i) {
    mode = "loading";
    render(await api("/practice/" + i), "practice");
  }

  async function render(data, kind) {
    item = data;
    shownAt = null;
    document.body.dataset.shown = "";
    const box = $("images");
    box.replaceChildren();
    const imgs = [];
    let templates = 0;
    data.images.forEach((im, k) => {
      const fig = document.createElement("figure");
      fig.className = im.role;
      const img = document.createElement("img");
      img.src = im.url;
      img.alt = im.role === "query" ? "query image" : "defect-free sample";
      img.addEventListener("click", () => zoom(img));
      const cap = document.createElement("figcaption");
      cap.textContent = im.role === "template" ? "defect-free sample " + (++templates)
        : im.role === "query" ? "query: inspect this one" : "reference";
      fig.append(img, cap);
      box.append(fig);
      imgs.push(img);
    });
    $("block").textContent = kind === "practice"
      ? "Practice " + (data.n + 1) + " of " + state.practice_total + " (not scored)"
      : (data.block === "detection" ? "Detection block" : "Second block") +
        " · question " + (data.n + 1) + " of " + state.total;
    $("qtext").textContent = data.question;
    const list = $("options");
    list.replaceChildren();
    data.options.forEach(([letter, text], i) => {
      const li = document.createElement("li");
      li.dataset.letter = letter;
      const keys = document.createElement("span");
      keys.className = "keys";
      const extra = data.yes_no ? (data.yes_no.yes === letter ? "Y" : data.yes_no.no === letter ? "N" : "") : "";
      for (const k of [String(i + 1), letter, extra]) {
        if (!k) continue;
        const kbd = document.createElement("kbd");
        kbd.textContent = k;
        keys.append(kbd);
      }
      const span = document.createElement("span");
      span.className = "text";
      span.textContent = text;
      li.append(keys, span);
      li.addEventListener("click", () => choose(letter));
      list.append(li);
    });
    $("feedback").textContent = "";
    if (data.given) {
      mark(data.given.choice, "given");
      $("feedback").textContent = "Your answer: " + (data.given.unsure ? "unsure" : data.given.choice) +
        ". Press another key to change it, Enter to keep it.";
    }
    mode = kind;
    show("question");
    progress();
    await Promise.all(imgs.map((img) => img.decode().catch(() => {
      status("an image could not be shown; tell the organiser");
    })));
    if (item !== data) return;  // moved on meanwhile
    startClock();
    document.body.dataset.block = data.block;
    document.body.dataset.shown = kind + ":" + data.n;
  }

  function mark(letter, cls) {
    for (const li of $("options").children) li.classList.toggle(cls, li.dataset.letter === letter);
  }

  // ------------------------------------------------------------------ answering
  async function choose(letter) {
    if (busy || shownAt === null || (mode !== "question" && mode !== "practice")) return;
    const body = {n: item.n, choice: letter, ms: now() - shownAt, hidden_ms: hiddenMs, idle_ms: idleMs};
    busy = true;
    mark(letter, "chosen");
    try {
      if (mode === "practice") return await practiceFeedback(letter);
      const current = item;
      let res;
      try {
        res = await send(body);
      } catch (err) {
        return recover(err);
      }
      items.delete(current.n);
      state = res;
      progress();
      if (res.finished) return finished();
      if (current.block === "detection" && !res.detection_open) {
        return message("Detection block finished",
          "The remaining " + (state.total - state.detection_total) + " questions ask more about the images. " +
          "You cannot go back to the detection block.", () => goTo(state.next));
      }
      return goTo(current.n + 1 < state.total ? current.n + 1 : state.next);
    } finally {
      busy = false;
    }
  }

  async function practiceFeedback(letter) {
    const fb = await api("/practice/answer", {i: item.n, choice: letter});
    state = Object.assign(state, fb);
    mark(fb.answer, "right");
    $("feedback").textContent = (fb.correct ? "Right. " : "Not quite: the answer is " + fb.answer + ", \u201c" +
      fb.answer_text + "\u201d. ") + "Press Enter to continue.";
    mode = "feedback";
    document.body.dataset.mode = mode;
    practiceNext = item.n + 1;
  }

  function afterFeedback() {
    if (practiceNext < state.practice_total) return practice(practiceNext);
    message("Practice finished", "The real questions start now. " +
      (state.detection_total ? blockText() : ""), () => goTo(state.next));
  }

  async function recover(err) {
    status(err.message || String(err));
    state = await api("/state");
    progress();
    if (state.finished) return finished();
    return goTo(state.next);
  }

  function back() {
    if (mode === "question" && item.can_go_back && !busy) goTo(item.n - 1);
  }

  function keep() {
    if (mode === "question" && item.given && !busy) {
      goTo(item.n + 1 < state.total ? item.n + 1 : state.next);
    }
  }

  // ------------------------------------------------------------------ zoom to full resolution
  function zoom(img) {
    const box = $("zoom");
    const big = $("zoom-img");
    big.src = img.src;
    const fit = Math.min(window.innerWidth / img.naturalWidth, window.innerHeight / img.naturalHeight);
    const scale = fit > 1 ? Math.floor(fit) : 1;  // every pixel shown: 1:1, or whole multiples of a small image
    big.width = img.naturalWidth * scale;
    big.height = img.naturalHeight * scale;
    box.hidden = false;
  }

  function unzoom() { $("zoom").hidden = true; }

  // ------------------------------------------------------------------ keys
  // digits by their place on the keyboard (event.code: the key labelled 1 is Digit1 on AZERTY too, where it
  // types "&"); letters by the letter the layout types (A on AZERTY, Y on QWERTZ), by place when it types none
  function letterOf(ev) {
    if (/^[a-z]$/i.test(ev.key)) return ev.key.toUpperCase();
    const m = /^Key([A-Z])$/.exec(ev.code);
    return m ? m[1] : null;
  }

  function optionFor(ev) {
    const letters = item.options.map(([letter]) => letter);
    // the number row by place; the keypad only with NumLock on (off, its 4 is an arrow key)
    const digit = /^(?:Digit|Numpad)([1-9])$/.exec(ev.code);
    if (digit && (ev.code.startsWith("Digit") || /^[1-9]$/.test(ev.key))) return letters[Number(digit[1]) - 1] || null;
    const ch = letterOf(ev);
    if (item.yes_no && ch === "Y") return item.yes_no.yes;
    if (item.yes_no && ch === "N") return item.yes_no.no;
    return ch && letters.includes(ch) ? ch : null;
  }

  const isOption = (letter) => (mode === "question" || mode === "practice") && item &&
    item.options.some(([l]) => l === letter);

  const isEnter = (ev) => ev.key === "Enter" || ev.code === "Enter" || ev.code === "NumpadEnter" || ev.code === "Space";

  document.addEventListener("keydown", (ev) => {
    noteInput();
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    const ch = letterOf(ev);
    let handled = true;
    if (!$("zoom").hidden) {
      if (ev.key === "Escape" || ch === "Z") unzoom();
      else if (mode === "question" || mode === "practice") { unzoom(); handled = answerKey(ev, ch); }
    } else if (ch === "G" && mode !== "guidelines" && mode !== "loading" && !isOption("G")) {
      const back = mode, shown = document.querySelector(".screen:not([hidden])").id;
      mode = "guidelines";
      show("guidelines");
      onGuidelinesClosed = () => { mode = back; show(shown); };
    } else if (mode === "guidelines") {
      if (isEnter(ev) || ch === "G" || ev.key === "Escape") closeGuidelines(); else handled = false;
    } else if (mode === "message") {
      if (isEnter(ev) && onContinue) { const next = onContinue; onContinue = null; next(); } else handled = false;
    } else if (mode === "feedback") {
      if (isEnter(ev)) afterFeedback(); else handled = false;
    } else if (mode === "question" || mode === "practice") {
      handled = answerKey(ev, ch);
    } else {
      handled = false;
    }
    if (handled) ev.preventDefault();
  });

  function answerKey(ev, ch) {
    if (ch === "Z") { zoom(document.querySelector("figure.query img") || document.querySelector("#images img")); }
    else if (ch === "U") choose(null);
    else if (ev.key === "Backspace" || ev.key === "ArrowLeft") back();
    else if (isEnter(ev) || ev.key === "ArrowRight") keep();
    else {
      const letter = optionFor(ev);
      if (!letter) return false;
      choose(letter);
    }
    return true;
  }

  let onGuidelinesClosed = null;
  function closeGuidelines() {
    if (onGuidelinesClosed) { const f = onGuidelinesClosed; onGuidelinesClosed = null; f(); return; }
    begin();
  }

  $("zoom").addEventListener("click", unzoom);

  // ------------------------------------------------------------------ start
  (async () => {
    await flushPending();
    state = await api("/state");
    progress();
    if (state.finished) return finished();
    if (!state.practice_done || (state.answered === 0 && state.practice_next === 0)) return guidelines();
    return begin();
  })().catch((err) => message("Cannot start", err.message || String(err), null));
})();
