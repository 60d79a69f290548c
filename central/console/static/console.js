// Kiosk fleet console: polls the JSON API and updates tiles, terminal status and command states in place.
// No framework, no build step. All text it writes goes through textContent (never innerHTML).
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const el = (id) => document.getElementById(id);

  function setText(node, text) { if (node && node.textContent !== String(text)) node.textContent = text; }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) { window.location.href = "/console/login?reason=SESSION_EXPIRED"; throw new Error("logged out"); }
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function poll(url, intervalMs, apply) {
    const stale = el("stale");
    async function tick() {
      try { apply(await getJSON(url)); if (stale) stale.hidden = true; }
      catch (e) { if (stale) stale.hidden = false; }
      finally { window.setTimeout(tick, intervalMs); }
    }
    tick();
  }

  function now() { return new Date().toLocaleTimeString("zh-CN", { hour12: false }); }

  // ---- fleet grid --------------------------------------------------------------------------------------
  const fleet = document.querySelector("section.fleet[data-poll]");
  if (fleet) {
    const url = fleet.dataset.poll + window.location.search;
    poll(url, Number(fleet.dataset.interval) || 5000, function (data) {
      const seen = new Set();
      for (const t of data.terminals) {
        seen.add(t.id);
        const tile = fleet.querySelector('.tile[data-terminal="' + CSS.escape(t.id) + '"]');
        if (!tile) continue;
        if (tile.dataset.colour !== t.colour) {
          tile.classList.remove("c-" + tile.dataset.colour);
          tile.classList.add("c-" + t.colour);
          tile.dataset.colour = t.colour;
        }
        tile.dataset.status = t.status;
        setText(tile.querySelector(".tile-status"), t.status_zh);
        const paper = tile.querySelector(".tile-paper");
        setText(paper, t.paper_zh);
        paper.hidden = t.paper === "ok" || t.paper === "unknown";
        const alerts = tile.querySelector(".tile-alerts");
        setText(alerts, t.open_alerts);
        alerts.hidden = !t.open_alerts;
        tile.title = t.id + " · " + t.location + " · " + t.status_en + (t.problems.length ? " · " + t.problems.join(", ") : "") + " · " + t.last_beat_ago;
      }
      for (const tile of fleet.querySelectorAll(".tile[data-terminal]")) tile.hidden = !seen.has(tile.dataset.terminal);
      for (const floor of fleet.querySelectorAll(".floor")) {  // the floor's count follows its tiles
        const bad = floor.querySelectorAll('.tile[data-colour="red"]:not([hidden]), .tile[data-colour="amber"]:not([hidden])').length;
        const note = floor.querySelector(".floor-problems");
        if (note) { setText(note.querySelector(".floor-problem-count"), bad); note.hidden = !bad; }
      }
      for (const key of ["red", "amber", "green", "grey"]) setText(el("n-" + key), data.counts[key]);
      setText(el("n-alerts"), data.open_alerts);
      setText(el("n-total"), data.total);
      setText(el("n-shown"), data.shown);
      setText(el("updated"), now());
      const badge = el("nav-alerts");
      if (badge) { setText(badge, data.open_alerts); badge.hidden = !data.open_alerts; }
    });
  }

  // ---- terminal page -----------------------------------------------------------------------------------
  const term = document.querySelector("section.terminal[data-poll]");
  if (term) {
    const head = el("term-head");
    const rows = el("command-rows");
    const msg = el("cmd-msg");

    function commandRow(c) {
      let tr = rows.querySelector('tr[data-command="' + c.id + '"]');
      if (!tr) {
        const none = rows.querySelector("tr.none");
        if (none) none.remove();
        tr = document.createElement("tr");
        tr.dataset.command = c.id;
        for (let i = 0; i < 6; i++) tr.appendChild(document.createElement("td"));
        tr.children[5].className = "result";
        const state = document.createElement("span");
        tr.children[2].appendChild(state);
        rows.prepend(tr);
      }
      tr.dataset.state = c.status;
      setText(tr.children[0], c.id);
      setText(tr.children[1], c.kind_zh);
      const state = tr.children[2].firstElementChild || tr.children[2].appendChild(document.createElement("span"));
      state.className = "cstate cs-" + c.status;
      setText(state, c.status_zh + " " + c.status);
      setText(tr.children[3], c.issued_by);
      setText(tr.children[4], c.issued_at);
      setText(tr.children[5], c.result || "");
    }

    function showShot(id) {
      const box = el("shot");
      if (!box || !id) return;
      const img = box.querySelector("img");
      if (img && img.dataset.id === String(id)) return;
      const fresh = document.createElement("img");
      fresh.alt = "终端屏幕截图 screenshot";
      fresh.dataset.id = id;
      fresh.src = box.dataset.src + id + ".png";
      box.replaceChildren(fresh);
    }

    poll(term.dataset.poll, Number(term.dataset.interval) || 2000, function (data) {
      const t = data.terminal;
      if (head.dataset.colour !== t.colour) {
        head.classList.remove("c-" + head.dataset.colour);
        head.classList.add("c-" + t.colour);
        head.dataset.colour = t.colour;
      }
      setText(el("term-status"), t.status_zh + " " + t.status_en);
      setText(el("term-beat"), t.last_beat_ago);
      setText(el("term-paper"), t.paper_zh);
      for (const d of data.devices) {
        const tr = document.querySelector('#device-rows tr[data-device="' + CSS.escape(d.device) + '"]');
        if (!tr) continue;
        const pill = tr.children[1].querySelector(".pill");
        if (pill) { pill.className = "pill p-" + d.status; setText(pill, d.status_zh); }
      }
      for (const c of data.commands.slice().reverse()) commandRow(c);
      showShot(data.last_screenshot_id);
    });

    async function send(kind, args, label) {
      if (!csrf) return;
      setText(msg, "发送中… sending " + kind);
      msg.className = "cmd-msg";
      try {
        const response = await fetch("/console/api/terminals/" + encodeURIComponent(term.dataset.terminal) + "/commands", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
          body: JSON.stringify({ kind: kind, args: args }),
        });
        const body = await response.json();
        if (!response.ok) throw new Error((body.message || "") + " · " + (body.message_en || response.status));
        commandRow(body);
        setText(msg, "已提交 #" + body.id + " " + label + "，等待终端执行 · queued, waiting for the terminal");
        msg.className = "cmd-msg good";
      } catch (e) {
        setText(msg, "未能发送 · not sent: " + e.message);
        msg.className = "cmd-msg bad";
      }
    }

    for (const button of term.querySelectorAll("button.cmd[data-kind]")) {
      button.addEventListener("click", function () {
        const label = button.dataset.label;
        if (button.dataset.confirm === "1" && !window.confirm("确认对 " + term.dataset.terminal + " 执行「" + label + "」？\nSend \"" + button.dataset.kind + "\" to " + term.dataset.terminal + "?")) return;
        send(button.dataset.kind, {}, label);
      });
    }
    const update = term.querySelector("form.update-form");
    if (update) update.addEventListener("submit", function (event) {
      event.preventDefault();
      const version = update.elements.version.value.trim();
      if (!window.confirm("确认将 " + term.dataset.terminal + " 升级到 " + version + "？")) return;
      send("update", { version: version }, "升级 " + version);
    });
  }

  // ---- alert badge on other pages ----------------------------------------------------------------------
  const badge = el("nav-alerts");
  if (badge && !fleet && csrf) {
    getJSON("/console/api/fleet?status=red").then(function (data) {
      setText(badge, data.open_alerts); badge.hidden = !data.open_alerts;
    }).catch(function () {});
  }
})();
