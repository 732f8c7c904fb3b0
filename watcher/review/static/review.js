// The review page: the queue polled as JSON, decided from the keyboard. Every name and value is set as
// text (textContent), never as HTML, so a file called <script>… shows as those characters.
"use strict";

(() => {
  const POLL_MS = 2000;
  const RATE_WINDOW_MS = 5 * 60 * 1000;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  const state = {
    items: [], // waiting, in the order shown: grouped by the value read, oldest first in each group
    currentId: null,
    typed: "",
    view: "single",
    wholePage: false, // a form field is shown as its part of the page; P shows the whole page around it
    sending: new Set(), // decided here, its POST not answered yet: hidden from the polled queue meanwhile
    decidedAt: [],
  };
  const tiles = new Map(); // item id -> its tile in the grid
  let chain = Promise.resolve(); // decisions are sent one after the other, in the order they were made

  const byValueRead = (a, b) =>
    a.prediction.localeCompare(b.prediction) || a.time.localeCompare(b.time) || a.id.localeCompare(b.id);

  function say(text) {
    $("message").textContent = text;
  }

  function currentIndex() {
    return state.items.findIndex((item) => item.id === state.currentId);
  }

  function where(item) {
    const parts = [item.file];
    if (item.one_of_pages || item.page !== "1") parts.push(`page ${item.page}`);
    if (item.field) parts.push(`field ${item.field}`);
    return parts.join(", ");
  }

  function imageUrl(item, whole) {
    return `/api/items/${encodeURIComponent(item.id)}/${whole ? "page" : "image"}`;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderSingle(item) {
    $("current-image").src = item ? imageUrl(item, state.wholePage && item.field !== "") : "";
    $("current-file").textContent = item ? where(item) : "";
    $("current-reading").textContent = item ? item.prediction || "(nothing)" : "";
    $("current-top3").textContent = item ? item.top3 : "";
    $("current-confidence").textContent = item ? item.confidence : "";
    $("current-why").textContent = item ? item.why : "";
  }

  function tileOf(item) {
    // Made once per item and moved about after, so its picture is not fetched again at each key.
    if (!tiles.has(item.id)) {
      const tile = element("div", "tile");
      const picture = element("img");
      picture.src = imageUrl(item);
      picture.alt = where(item);
      tile.append(picture, element("span", "", where(item)));
      tiles.set(item.id, tile);
    }
    return tiles.get(item.id);
  }

  function renderGrid() {
    const live = new Set(state.items.map((item) => item.id));
    for (const id of tiles.keys()) if (!live.has(id)) tiles.delete(id);
    const groups = new Map();
    for (const item of state.items) {
      if (!groups.has(item.prediction)) groups.set(item.prediction, []);
      groups.get(item.prediction).push(item);
    }
    const sections = [];
    for (const [value, items] of groups) {
      const heading = element("h2", "", `read as ${value || "(nothing)"}: ${items.length}`);
      const group = element("div", "group");
      for (const item of items) {
        const tile = tileOf(item);
        tile.classList.toggle("current", item.id === state.currentId);
        group.append(tile);
      }
      sections.push(heading, group);
    }
    $("grid").replaceChildren(...sections);
    const current = $("grid").querySelector(".tile.current");
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function render() {
    const index = currentIndex();
    const item = index >= 0 ? state.items[index] : null;
    $("left").textContent = `${state.items.length} left`;
    $("rate").textContent = rate();
    $("typed").textContent = state.typed;
    $("view-name").textContent = state.view === "single" ? "one at a time" : "grid";
    $("empty").hidden = state.items.length > 0;
    // The current item's reading stays in view in both; the grid shows the whole queue instead of its big picture.
    document.body.classList.toggle("grid-view", state.view === "grid");
    $("single").hidden = !item;
    $("grid").hidden = state.view !== "grid" || !item;
    renderSingle(item);
    if (state.view === "grid") renderGrid();
  }

  function rate() {
    const now = Date.now();
    const recent = state.decidedAt.filter((t) => now - t < RATE_WINDOW_MS);
    if (recent.length < 2) return "";
    const minutes = (recent[recent.length - 1] - recent[0]) / 60000;
    return minutes > 0 ? `${((recent.length - 1) / minutes).toFixed(1)} items/min` : "";
  }

  function move(step) {
    if (!state.items.length) return;
    const index = Math.max(currentIndex(), 0);
    const next = (index + step + state.items.length) % state.items.length;
    state.currentId = state.items[next].id;
    state.typed = "";
    state.wholePage = false;
  }

  function take(items) {
    // Keep the place: the same item if it still waits, else the one now at its position.
    const index = currentIndex();
    state.items = items.filter((item) => !state.sending.has(item.id)).sort(byValueRead);
    if (!state.items.some((item) => item.id === state.currentId)) {
      const kept = state.items[Math.min(Math.max(index, 0), state.items.length - 1)];
      state.currentId = kept ? kept.id : null;
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/queue", { credentials: "same-origin" });
      if (!response.ok) {
        say(`the queue could not be read (${response.status})`);
        return;
      }
      take((await response.json()).items);
      render();
    } catch (error) {
      say(`the review station is not answering: ${error.message}`);
    }
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
  }

  function decide() {
    const index = currentIndex();
    if (index < 0) return;
    const item = state.items[index];
    const value = state.typed;
    if (!value && !item.prediction) {
      say("the model read nothing here: type the value, then Enter");
      return;
    }
    // Off the list at once, so the next item is ready while the decision is on its way.
    state.sending.add(item.id);
    state.items.splice(index, 1);
    const next = state.items[Math.min(index, state.items.length - 1)];
    state.currentId = next ? next.id : null;
    state.wholePage = false;
    state.typed = "";
    state.decidedAt.push(Date.now());
    render();
    chain = chain.then(async () => {
      try {
        const response = await post(`/api/items/${encodeURIComponent(item.id)}/decide`, { value });
        const answer = await response.json();
        if (response.ok) say(`${where(item)}: ${answer.status} as ${answer.prediction}`);
        else say(`${where(item)}: ${answer.error}`);
      } catch (error) {
        say(`${where(item)}: not sent (${error.message})`);
      } finally {
        state.sending.delete(item.id);
      }
      await refresh();
    });
  }

  function undo() {
    chain = chain.then(async () => {
      const response = await post("/api/undo", {});
      const answer = await response.json();
      if (response.ok) {
        say(`undone: back in review, read as ${answer.prediction}`);
        state.currentId = answer.id;
      } else {
        say(answer.error);
      }
      await refresh();
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (/^[0-9]$/.test(key)) {
      if (state.typed.length < 64) state.typed += key;
    } else if (key === "Enter") {
      decide();
    } else if (key === "Backspace") {
      state.typed = state.typed.slice(0, -1);
    } else if (key === "Escape") {
      state.typed = "";
    } else if (key === "s" || key === " ") {
      move(1);
    } else if (key === "ArrowRight" || key === "ArrowDown" || key === "j") {
      move(1);
    } else if (key === "ArrowLeft" || key === "ArrowUp" || key === "k") {
      move(-1);
    } else if (key === "p") {
      state.wholePage = !state.wholePage;
    } else if (key === "g") {
      state.view = state.view === "single" ? "grid" : "single";
    } else if (key === "u") {
      undo();
    } else {
      return;
    }
    event.preventDefault();
    render();
  });

  refresh();
  setInterval(refresh, POLL_MS);
})();
