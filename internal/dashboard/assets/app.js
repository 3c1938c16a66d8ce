// cardwarden dashboard: a fleet table and an agent page, refreshed by polling the JSON
// endpoints of internal/dashboard. Plain DOM and SVG, no dependencies, no build step. Every
// value from the server goes into the page as text (textContent / attributes), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "cardwarden.adminToken";
  const SVGNS = "http://www.w3.org/2000/svg";
  const app = document.getElementById("app");
  const summary = document.getElementById("summary");
  const updated = document.getElementById("updated");
  const live = document.getElementById("live");

  let pollMS = 2000;
  let timer = null;
  let generation = 0; // bumps on navigation so stale responses are dropped
  let lastFleet = null;
  let chartMode = "daily";
  let lastAgentJSON = "";
  let timelineSpan = "fit"; // "fit" (zoom to the marks), "24h" or "7d"
  const SPANS = { "24h": 86400e3, "7d": 7 * 86400e3 };

  // ---------- DOM helpers ----------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  // ---------- formatting ----------

  function money(amount, currency) {
    if (amount === undefined || amount === null) return "–";
    return (currency || "USD") === "USD" ? "$" + amount : amount + " " + currency;
  }

  function ago(iso) {
    if (!iso) return "";
    const d = (Date.now() - new Date(iso).getTime()) / 1000;
    if (d < 0) return "in " + span(-d);
    return span(d) + " ago";
  }

  // agoEl is a relative time that refreshAgo keeps current without rebuilding its row.
  function agoEl(iso, suffix) {
    return h("span", { class: "ago", title: iso, dataset: { at: iso, suffix: suffix || "" } }, ago(iso) + (suffix || ""));
  }

  function refreshAgo() {
    for (const el of document.querySelectorAll("span.ago[data-at]")) {
      const t = ago(el.dataset.at) + el.dataset.suffix;
      if (el.textContent !== t) el.textContent = t;
    }
  }

  function span(sec) {
    if (sec < 60) return Math.floor(sec) + "s";
    if (sec < 3600) return Math.floor(sec / 60) + "m";
    if (sec < 86400) return Math.floor(sec / 3600) + "h";
    return Math.floor(sec / 86400) + "d";
  }

  function when(iso) {
    if (!iso || iso.startsWith("0001-")) return "–";
    const d = new Date(iso);
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function cents(amount) {
    // Decimal strings to integer cents for chart geometry only; money is never added up here.
    if (!amount) return 0;
    const neg = amount.startsWith("-");
    const [w, f = "0"] = amount.replace("-", "").split(".");
    const c = parseInt(w, 10) * 100 + parseInt((f + "00").slice(0, 2), 10);
    return neg ? -c : c;
  }

  // ---------- token and API ----------

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  class HTTPError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, opts) {
    const o = Object.assign({ headers: {} }, opts || {});
    o.headers = Object.assign({ Accept: "application/json" }, o.headers);
    if (token()) o.headers.Authorization = "Bearer " + token();
    const res = await fetch(path, o);
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && body.error ? (body.error.message || body.error) : res.status + " " + res.statusText;
      throw new HTTPError(res.status, String(msg));
    }
    return body;
  }

  const tokenDialog = document.getElementById("token-dialog");
  const tokenInput = document.getElementById("token-input");
  let tokenWaiters = [];

  function askToken(why) {
    const p = document.getElementById("token-why");
    if (why) p.dataset.why = why;
    if (!tokenDialog.open) {
      tokenInput.value = "";
      tokenDialog.showModal();
      tokenInput.focus();
    }
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }

  function settleToken(ok) {
    const ws = tokenWaiters;
    tokenWaiters = [];
    ws.forEach((w) => w(ok));
  }

  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = tokenInput.value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    tokenDialog.close();
    settleToken(true);
    refreshNow();
  });
  document.getElementById("token-cancel").addEventListener("click", () => { tokenDialog.close(); settleToken(false); });
  document.getElementById("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenDialog.close();
    settleToken(false);
    toast("Admin token forgotten");
    refreshNow();
  });
  tokenDialog.addEventListener("cancel", () => settleToken(false));
  document.getElementById("token-btn").addEventListener("click", () => askToken());

  // ---------- toast ----------

  const toastEl = document.getElementById("toast");
  let toastTimer = null;
  function toast(msg, isError) {
    toastEl.textContent = msg;
    toastEl.classList.toggle("error", !!isError);
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.hidden = true; }, isError ? 8000 : 4000);
  }

  // ---------- actions (freeze / unfreeze / rotate) ----------

  const actionDialog = document.getElementById("action-dialog");
  const actionReason = document.getElementById("action-reason");
  let pendingAction = null;

  const ACTION_TEXT = {
    freeze: ["Freeze", "Pause the card at the issuer now. Purchases are declined until someone unfreezes it.", "frozen from the dashboard"],
    unfreeze: ["Unfreeze", "Resume the card (or issue a new one if it was revoked) with today's remaining budget.", "reviewed; unfrozen from the dashboard"],
    rotate: ["Rotate", "Issue a new card now; the old one stays open for the rotation grace period, then closes.", "rotated from the dashboard"],
  };

  async function startAction(action, agentID) {
    if (!token()) {
      const ok = await askToken("Actions need the admin token.");
      if (!ok) return;
    }
    const [title, help, reason] = ACTION_TEXT[action];
    pendingAction = { action, agentID };
    document.getElementById("action-title").textContent = title + " " + agentID + "?";
    document.getElementById("action-help").textContent = help;
    actionReason.value = reason;
    actionDialog.showModal();
    actionReason.select();
  }

  document.getElementById("action-cancel").addEventListener("click", () => { actionDialog.close(); pendingAction = null; });
  document.getElementById("action-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const p = pendingAction;
    if (!p) return;
    pendingAction = null;
    actionDialog.close();
    try {
      await api("/v1/agents/" + encodeURIComponent(p.agentID) + "/" + p.action, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason: actionReason.value || ACTION_TEXT[p.action][2], actor: "dashboard" }),
      });
      toast(ACTION_TEXT[p.action][0] + ": " + p.agentID + " done");
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        askToken("The admin token was refused.");
      }
      toast(ACTION_TEXT[p.action][0] + " " + p.agentID + " failed: " + err.message, true);
    }
    refreshNow();
  });

  function actionButtons(row) {
    const st = row.status;
    const btns = [];
    if (st === "active") btns.push(h("button", { class: "btn", type: "button", dataset: { action: "freeze", agent: row.agent_id }, onclick: () => startAction("freeze", row.agent_id) }, "Freeze"));
    if (st === "frozen" || st === "revoked") btns.push(h("button", { class: "btn", type: "button", dataset: { action: "unfreeze", agent: row.agent_id }, onclick: () => startAction("unfreeze", row.agent_id) }, "Unfreeze"));
    if (st !== "retired") btns.push(h("button", { class: "btn", type: "button", dataset: { action: "rotate", agent: row.agent_id }, onclick: () => startAction("rotate", row.agent_id) }, "Rotate"));
    if (row.workflow_url) btns.push(h("a", { class: "ext", href: row.workflow_url, target: "_blank", rel: "noopener noreferrer", title: "Open the workflow in the Temporal Web UI" }, "Temporal"));
    return h("div", { class: "actions" }, btns);
  }

  // ---------- shared pieces ----------

  function badge(status) { return h("span", { class: "badge " + status, dataset: { status } }, status || "unknown"); }

  function spendBar(row) {
    const p = row.spent_pct || 0;
    const fill = h("div", { class: "fill" });
    fill.style.width = Math.min(100, Math.max(0, p)) + "%";
    const cls = p >= 100 ? "bar over" : p >= 80 ? "bar warn" : "bar";
    return h("div", {},
      h("div", { class: cls, title: p + "% of the daily limit", role: "meter", "aria-valuenow": p, "aria-valuemin": 0, "aria-valuemax": 100 }, fill),
      h("div", { class: "spend-text" }, h("b", {}, money(row.spent_today_usd, row.currency)), " of " + money(row.daily_limit_usd, row.currency) + " · " + p + "%",
        cents(row.overspend_today_usd) > 0 ? h("span", { class: "stale-note" }, "overspend " + money(row.overspend_today_usd, row.currency)) : null));
  }

  function renderSummary(f) {
    summary.replaceChildren();
    const t = f.totals;
    summary.append(h("span", { class: "chip" }, h("b", {}, t.agents), "agents"));
    for (const st of ["active", "frozen", "revoked", "retired"]) {
      if (t.by_status[st]) summary.append(h("span", { class: "chip " + st, dataset: { status: st } }, h("b", {}, t.by_status[st]), st));
    }
    summary.append(h("span", { class: "chip" }, h("b", {}, money(t.spent_today_usd)), "spent today"));
  }

  function setUpdated(ok, at) {
    live.classList.toggle("stale", !ok);
    updated.textContent = ok ? "live · " + new Date(at || Date.now()).toLocaleTimeString() : "not updating";
  }

  // ---------- fleet view ----------

  function renderFleet(f) {
    renderSummary(f);
    let table = document.getElementById("fleet");
    if (!table) {
      table = h("table", { id: "fleet", class: "fleet" },
        h("thead", {}, h("tr", {}, ["Agent", "Status", "Card", "Today's spend", "Rotations", "Last decline", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}));
      app.replaceChildren(h("div", { class: "panel" }, table));
    }
    const tbody = table.tBodies[0];
    // Rows are rebuilt only when their data changed, and in place: a row someone is about to
    // click is not swapped under the pointer every poll.
    const existing = new Map([...tbody.querySelectorAll("tr[data-agent]")].map((tr) => [tr.dataset.agent, tr]));
    const rows = f.agents.map((r) => {
      const sig = JSON.stringify(r);
      const old = existing.get(r.agent_id);
      if (old && old.dataset.sig === sig) return old;
      const tr = fleetRow(r);
      tr.dataset.sig = sig;
      return tr;
    });
    const sameOrder = rows.length === existing.size && rows.every((tr, i) => tbody.rows[i] && tbody.rows[i].dataset.agent === tr.dataset.agent);
    if (rows.length === 0) {
      if (!tbody.querySelector("td.empty")) tbody.replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: 7 }, "No agents yet. Create one with `cardwarden agent create` or POST /v1/agents.")));
    } else if (sameOrder) {
      rows.forEach((tr, i) => { if (tbody.rows[i] !== tr) tbody.rows[i].replaceWith(tr); });
    } else {
      tbody.replaceChildren(...rows);
    }
    refreshAgo();
  }

  function fleetRow(r) {
    return h("tr", { class: r.status, dataset: { agent: r.agent_id, status: r.status } },
      h("td", { class: "agent" }, h("a", { href: "#/agents/" + encodeURIComponent(r.agent_id) }, r.agent_id),
        r.label && r.label !== r.agent_id ? h("div", { class: "label" }, r.label) : null),
      h("td", { class: "status" }, badge(r.status), r.live ? null : h("span", { class: "stale-note", title: "The workflow did not answer; showing the database's view" }, "stored"),
        r.status_reason && r.status !== "active" ? h("span", { class: "reason", title: r.status_reason }, r.status_reason) : null),
      h("td", { class: "card mono" }, r.card ? "•••• " + r.card.last4 : "–", r.card ? h("div", { class: "muted" }, "gen " + r.card.generation + " · " + r.card.status) : null),
      h("td", { class: "spend" }, spendBar(r)),
      h("td", { class: "num rotations" }, r.rotations),
      h("td", { class: "decline" }, r.last_decline ? [h("div", {}, r.last_decline.reason), h("div", { class: "muted" }, agoEl(r.last_decline.at, " · " + money(r.last_decline.amount_usd, r.currency)))] : h("span", { class: "muted" }, "none")),
      h("td", {}, actionButtons(r)));
  }

  // ---------- agent view ----------

  function statBox(label, value, sub) {
    return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
  }

  function renderAgent(d) {
    const r = d.agent;
    const st = d.state;
    const head = h("div", { class: "agent-head" },
      h("a", { class: "back", href: "#/" }, "← Fleet"),
      h("h1", { id: "agent-title" }, r.agent_id), badge(r.status),
      r.team_id ? h("a", { class: "team-link", href: "#/teams/" + encodeURIComponent(r.team_id) }, "team " + r.team_id) : null,
      r.live ? null : h("span", { class: "stale-note" }, "workflow not answering: stored view"),
      r.status_reason && r.status !== "active" ? h("span", { class: "muted" }, r.status_reason) : null,
      actionButtons(r));

    const b = st ? st.budget : null;
    const stats = h("div", { class: "grid" },
      h("div", { class: "stat" }, h("div", { class: "label" }, "Today (" + (r.day || "") + ")"), spendBar(r)),
      statBox("Reserved", money(r.reserved_usd, r.currency), "remaining today " + money(r.remaining_today_usd, r.currency) + (r.live ? "" : " (stored view: no reservations known)")),
      statBox("Card", r.card ? "•••• " + r.card.last4 : "none", r.card ? "generation " + r.card.generation + " · " + r.card.status : ""),
      statBox("This month", b ? money(b.spent_month_usd, r.currency) : "–", b && b.monthly_limit_usd ? "of " + money(b.monthly_limit_usd, r.currency) : "no monthly cap"),
      statBox("Next reset", st ? when(st.next_reset) : "–", d.timezone),
      statBox("Next rotation", st && st.next_rotation ? when(st.next_rotation) : "–", "rotations " + r.rotations + " · freezes " + r.freezes + " · revocations " + r.revocations));

    const tabs = h("div", { class: "tabs" },
      h("button", { type: "button", class: chartMode === "daily" ? "on" : "", onclick: () => { chartMode = "daily"; renderAgent(d); } }, "30 days"),
      h("button", { type: "button", class: chartMode === "hourly" ? "on" : "", onclick: () => { chartMode = "hourly"; renderAgent(d); } }, "Today by hour"));
    const spend = h("div", { class: "panel", id: "spend-panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Spend"), tabs),
      chartMode === "daily" ? dailyChart(d) : hourlyChart(d),
      h("div", { class: "legend" }, h("span", { class: "l-spend" }, "spend"), h("span", { class: "l-over" }, "overspend"),
        chartMode === "hourly" ? h("span", { class: "l-cum" }, "cumulative") : null, h("span", { class: "l-limit" }, "daily limit")));

    const tspan = timelineSpan;
    const spanTabs = h("div", { class: "tabs", id: "timeline-span" },
      [["fit", "Zoom to events"], ["24h", "24 hours"], ["7d", "7 days"]].map(([k, label]) =>
        h("button", { type: "button", class: tspan === k ? "on" : "", dataset: { span: k }, onclick: () => { timelineSpan = k; renderAgent(d); } }, label)));
    const timeline = h("div", { class: "panel", id: "timeline-panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Declines, freezes and revocations"), spanTabs),
      timelineChart(d, tspan),
      h("div", { class: "legend" }, h("span", { class: "l-freeze" }, "freeze"), h("span", { class: "l-revoke" }, "revoke"),
        h("span", { class: "l-unfreeze" }, "unfreeze"), h("span", { class: "l-rotate" }, "rotate / issue"),
        ...[...new Set(d.timeline.filter((m) => m.type === "decline").map((m) => m.reason))].map((rs) => h("span", { class: "r-" + rs }, "decline: " + rs))));

    const cards = h("div", { class: "panel" }, h("h2", {}, "Card generations"),
      h("table", { id: "cards" }, h("thead", {}, h("tr", {}, ["Gen", "Card", "Status", "Issued", "Closed", "Lived", "Daily limit"].map((c) => h("th", {}, c)))),
        h("tbody", {}, d.cards.slice().reverse().map((c) => h("tr", {},
          h("td", { class: "num" }, c.generation), h("td", { class: "mono", title: c.issuer + " " + c.issuer_card_id }, "•••• " + c.last4),
          h("td", {}, badge(c.status)), h("td", { title: c.issued_at }, when(c.issued_at)), h("td", { title: c.closed_at || "" }, c.closed_at ? when(c.closed_at) : "–"),
          h("td", {}, span(((c.closed_at ? new Date(c.closed_at) : new Date()) - new Date(c.issued_at)) / 1000)),
          h("td", { class: "num" }, money(c.daily_limit_usd, r.currency)))))));

    const alerts = h("div", { class: "panel" }, h("h2", {}, "Alerts"),
      d.alerts.length === 0 ? h("p", { class: "muted" }, "No alerts.") :
        h("div", { class: "scroll" }, h("table", { id: "alerts" }, h("thead", {}, h("tr", {}, ["When", "Kind", "Message", "Delivery"].map((c) => h("th", {}, c)))),
          h("tbody", {}, d.alerts.map((a) => h("tr", {}, h("td", {}, agoEl(a.created_at)), h("td", {}, a.kind),
            h("td", {}, a.message), h("td", {}, badge(a.status), h("span", { class: "muted" }, " " + a.attempts + " attempt" + (a.attempts === 1 ? "" : "s")))))))));

    const events = h("div", { class: "panel" }, h("h2", {}, "Recent issuer events"),
      d.events.length === 0 ? h("p", { class: "muted" }, "No events.") :
        h("div", { class: "scroll" }, h("table", { id: "events" }, h("thead", {}, h("tr", {}, ["When", "Kind", "Result", "Amount", "Merchant"].map((c) => h("th", {}, c)))),
          h("tbody", {}, d.events.map((e) => h("tr", {}, h("td", {}, agoEl(e.at)), h("td", {}, e.kind),
            h("td", {}, e.approved ? "approved" : h("span", { class: "badge revoked" }, e.reason || "declined")),
            h("td", { class: "num" }, money(e.amount_usd, r.currency)), h("td", {}, e.merchant || "–")))))));

    const links = r.workflow_url ? h("p", { class: "muted" }, "Workflow ", h("a", { class: "ext", href: r.workflow_url, target: "_blank", rel: "noopener noreferrer" }, "agent/" + r.agent_id), " in the Temporal Web UI.") : null;

    // replaceChildren would show a null (no Temporal UI link) as the text "null".
    app.replaceChildren(...[head, stats, decisionsPanel(d.decisions, false, r.currency), spend, timeline, h("div", { class: "two" }, cards, alerts), events, links].filter(Boolean));
  }

  // ---------- real-time decisions ----------

  // decisionsPanel is the table of real-time decisions (newest first); withAgent adds the
  // agent's column (a team's page).
  function decisionsPanel(ds, withAgent, currency) {
    const cols = ["When", withAgent ? "Agent" : null, "Decision", "Reason", "Amount", "Merchant", "Answered by"].filter(Boolean);
    return h("div", { class: "panel", id: "decisions-panel" }, h("h2", {}, "Real-time decisions"),
      ds.length === 0 ? h("p", { class: "muted" }, "No real-time decisions.") :
        h("div", { class: "scroll" }, h("table", { id: "decisions" }, h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
          h("tbody", {}, ds.map((x) => h("tr", { class: x.approved ? "approved" : "declined", dataset: { authorization: x.authorization_id, approved: String(x.approved), fallback: String(!!x.fallback) } },
            h("td", { title: x.at }, agoEl(x.at)),
            withAgent ? h("td", {}, h("a", { href: "#/agents/" + encodeURIComponent(x.agent_id) }, x.agent_id)) : null,
            h("td", {}, h("span", { class: "badge " + (x.approved ? "approved" : "declined") }, x.approved ? "approved" : "declined")),
            h("td", { class: "reason-cell" }, x.reason || "–"),
            h("td", { class: "num" }, money(x.amount_usd, x.currency || currency)),
            h("td", { class: "merchant", title: x.mcc ? "MCC " + x.mcc : "" }, x.merchant || "–"),
            h("td", {}, x.fallback ? h("span", { class: "badge fallback", title: "The workflow did not answer in time: the agent's on_decision_timeout" }, "fallback")
              : x.recorded ? "workflow" : h("span", { class: "muted", title: "In the workflow's state; not yet in the decisions table" }, "workflow (pending)"))))))));
  }

  // ---------- teams ----------

  function teamBar(t) {
    return spendBar({ spent_pct: t.spent_pct, spent_today_usd: t.spent_today_usd, daily_limit_usd: t.daily_limit_usd, overspend_today_usd: t.overspend_today_usd, currency: "USD" });
  }

  function renderTeams(l) {
    const rows = l.teams.map((t) => h("tr", { dataset: { team: t.team_id } },
      h("td", { class: "agent" }, h("a", { href: "#/teams/" + encodeURIComponent(t.team_id) }, t.team_id), t.label ? h("div", { class: "label" }, t.label) : null),
      h("td", { class: "spend" }, t.live ? teamBar(t) : h("span", { class: "stale-note", title: "The team's workflow did not answer" }, "workflow not answering")),
      h("td", { class: "num" }, t.live ? money(t.reserved_usd) : "–"),
      h("td", { class: "num" }, t.live ? money(t.remaining_today_usd) : "–"),
      h("td", { class: "num" }, t.live ? money(t.spent_month_usd) + (t.monthly_limit_usd ? " of " + money(t.monthly_limit_usd) : "") : "–"),
      h("td", { class: "num" }, t.members.length)));
    const table = h("table", { id: "teams", class: "fleet" },
      h("thead", {}, h("tr", {}, ["Team", "Today's spend", "Reserved", "Remaining", "This month", "Agents"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { class: "empty", colspan: 6 }, "No teams yet. Create one with `cardwarden team create` and give agents a team_id."))));
    app.replaceChildren(h("div", { class: "agent-head" }, h("h1", { id: "teams-title" }, "Teams")), h("div", { class: "panel" }, table));
  }

  function renderTeam(d) {
    const t = d.team;
    const head = h("div", { class: "agent-head" },
      h("a", { class: "back", href: "#/teams" }, "← Teams"),
      h("h1", { id: "team-title" }, t.team_id), t.label ? h("span", { class: "muted" }, t.label) : null,
      t.live ? null : h("span", { class: "stale-note" }, "team workflow not answering: members and decisions from the database"),
      t.workflow_url ? h("a", { class: "ext", href: t.workflow_url, target: "_blank", rel: "noopener noreferrer" }, "Temporal") : null);
    const stats = h("div", { class: "grid", id: "team-budget" },
      h("div", { class: "stat" }, h("div", { class: "label" }, "Today" + (t.day ? " (" + t.day + ")" : "")), t.live ? teamBar(t) : "–"),
      statBox("Reserved", t.live ? money(t.reserved_usd) : "–", "approved, authorization not arrived"),
      statBox("Remaining today", t.live ? money(t.remaining_today_usd) : "–", "of " + (t.live ? money(t.daily_limit_usd) : "–")),
      statBox("This month", t.live ? money(t.spent_month_usd) : "–", t.monthly_limit_usd ? "of " + money(t.monthly_limit_usd) : "no monthly cap"),
      statBox("Next reset", t.next_reset ? when(t.next_reset) : "–", t.timezone || ""));
    const members = h("div", { class: "panel" }, h("h2", {}, "Agents"),
      d.agents.length === 0 ? h("p", { class: "muted" }, "No agents in this team.") :
        h("table", { id: "members", class: "fleet" },
          h("thead", {}, h("tr", {}, ["Agent", "Status", "Today's spend", "Reserved"].map((c) => h("th", {}, c)))),
          h("tbody", {}, d.agents.map((r) => h("tr", { class: r.status, dataset: { agent: r.agent_id, status: r.status } },
            h("td", { class: "agent" }, h("a", { href: "#/agents/" + encodeURIComponent(r.agent_id) }, r.agent_id), r.label && r.label !== r.agent_id ? h("div", { class: "label" }, r.label) : null),
            h("td", { class: "status" }, badge(r.status)),
            h("td", { class: "spend" }, r.status === "unknown" ? "–" : spendBar(r)),
            h("td", { class: "num" }, money(r.reserved_usd, r.currency)))))));
    app.replaceChildren(head, stats, members, decisionsPanel(d.decisions, true, "USD"));
  }

  // ---------- charts (SVG) ----------

  const W = 960, H = 220, PAD_L = 52, PAD_R = 12, PAD_T = 12, PAD_B = 28;

  function yAxis(svg, max, currency) {
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const y = PAD_T + (H - PAD_T - PAD_B) * (1 - i / 4);
      svg.append(s("line", { class: "grid-line", x1: PAD_L, x2: W - PAD_R, y1: y, y2: y }));
      svg.append(s("text", { x: PAD_L - 6, y: y + 4, "text-anchor": "end" }, money(v % 100 === 0 ? (v / 100).toFixed(0) : (v / 100).toFixed(2), currency)));
    }
  }

  function yOf(c, max) { return PAD_T + (H - PAD_T - PAD_B) * (1 - Math.min(c, max) / max); }

  // niceMax rounds a chart's top up to 1, 2, 2.5 or 5 times a power of ten (in cents), so the
  // axis reads $10, $20, … rather than $14.37.
  function niceMax(c) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(c, 100))));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= c) return m * p;
    return 10 * p;
  }

  function barChart(points, labelOf, limitCents, currency, cumulativeUntil) {
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" });
    const spent = points.map((p) => cents(p.spent_usd));
    const over = points.map((p) => cents(p.overspend_usd || "0"));
    const cumulative = cumulativeUntil !== undefined;
    let cum = 0;
    const cums = spent.map((v) => (cum = Math.max(0, cum + v)));
    const max = niceMax(Math.max(limitCents * 1.1, ...spent, ...(cumulative ? cums : []), 100));
    yAxis(svg, max, currency);
    const bw = (W - PAD_L - PAD_R) / points.length;
    points.forEach((p, i) => {
      const x = PAD_L + i * bw + bw * 0.15;
      const v = Math.max(0, spent[i]);
      const y = yOf(v, max);
      const bar = s("rect", { class: "spend", x, y, width: bw * 0.7, height: Math.max(0, H - PAD_B - y) },
        s("title", {}, labelOf(p) + ": " + money(p.spent_usd, currency) + (p.declines ? " · " + p.declines + " declines" : "")));
      svg.append(bar);
      if (over[i] > 0) {
        const oy = yOf(v, max);
        const oh = Math.max(1, H - PAD_B - yOf(over[i], max));
        svg.append(s("rect", { class: "over", x, y: oy, width: bw * 0.7, height: oh }, s("title", {}, "overspend " + money(p.overspend_usd, currency))));
      }
      const every = points.length > 24 ? 5 : 3;
      if (i % every === 0 || i === points.length - 1) {
        svg.append(s("text", { x: PAD_L + i * bw + bw / 2, y: H - 8, "text-anchor": "middle" }, labelOf(p)));
      }
    });
    if (cumulative) {
      const pts = cums.slice(0, cumulativeUntil + 1).map((c, i) => `${PAD_L + i * bw + bw / 2},${yOf(c, max)}`).join(" ");
      svg.append(s("polyline", { class: "cumulative", points: pts }, s("title", {}, "cumulative spend today")));
    }
    if (limitCents > 0) {
      const ly = yOf(limitCents, max);
      svg.append(s("line", { class: "limit", x1: PAD_L, x2: W - PAD_R, y1: ly, y2: ly }, s("title", {}, "daily limit " + money((limitCents / 100).toFixed(2), currency))));
    }
    svg.append(s("line", { class: "axis", x1: PAD_L, x2: W - PAD_R, y1: H - PAD_B, y2: H - PAD_B }));
    return svg;
  }

  function dailyChart(d) {
    const svg = barChart(d.daily, (p) => p.day.slice(5), cents(d.agent.daily_limit_usd), d.agent.currency);
    svg.id = "chart-daily";
    svg.setAttribute("aria-label", "Spend per day, last 30 days");
    return svg;
  }

  function hourlyChart(d) {
    const svg = barChart(d.hourly, (p) => String(p.hour).padStart(2, "0") + "h", cents(d.agent.daily_limit_usd), d.agent.currency, d.now_hour);
    svg.id = "chart-hourly";
    svg.setAttribute("aria-label", "Spend per hour today");
    return svg;
  }

  const MARK_LABEL = { freeze: "frozen", revoke: "revoked", unfreeze: "unfrozen", rotate: "rotated", issue: "issued", retire: "retired" };
  const REASON_COLOR = { spending_limit: "#bf8700", card_paused: "#8c959f", card_closed: "#57606a", suspected_fraud: "#a40e26", merchant_blocked: "#8250df", card_expired: "#953800", other: "#d4a72c" };

  // fitWindow is the window, ending now, that shows every mark of the last 7 days with a margin
  // (at least 30 seconds), so a burst that just happened is not a single pixel at the edge of a
  // week.
  function fitWindow(d, to) {
    if (!d.timeline.length) return SPANS["24h"];
    const oldest = Math.min(...d.timeline.map((m) => new Date(m.at).getTime()));
    return Math.max(30e3, (to - oldest) * 1.3 + 10e3);
  }

  function timelineChart(d, span) {
    const TH = 150, top = 22, base = 110;
    const svg = s("svg", { class: "chart", id: "timeline", viewBox: `0 0 ${W} ${TH}`, role: "img", "aria-label": "Decline timeline" });
    const to = new Date(d.timeline_to).getTime();
    const width = span === "fit" ? fitWindow(d, to) : SPANS[span];
    const from = to - width;
    const marks = d.timeline.filter((m) => new Date(m.at).getTime() >= from);
    const ticks = span === "7d" ? 7 : span === "24h" ? 8 : 6;
    const x = (iso) => PAD_L + ((new Date(iso).getTime() - from) / Math.max(1, to - from)) * (W - PAD_L - PAD_R);
    svg.append(s("line", { class: "axis", x1: PAD_L, x2: W - PAD_R, y1: base, y2: base }));
    for (let i = 0; i <= ticks; i++) {
      const t = new Date(from + ((to - from) * i) / ticks);
      const xx = PAD_L + ((W - PAD_L - PAD_R) * i) / ticks;
      svg.append(s("line", { class: "grid-line", x1: xx, x2: xx, y1: top, y2: base }));
      const label = width > 2 * 86400e3 ? t.toLocaleDateString(undefined, { month: "short", day: "numeric" })
        : width > 3600e3 ? t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
          : t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      svg.append(s("text", { x: xx, y: TH - 14, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" }, label));
    }
    // Declines stack upward where they bunch, so a burst reads as a column.
    const stacks = new Map();
    for (const m of marks) {
      if (m.type !== "decline") continue;
      const xx = x(m.at);
      const bucket = Math.round(xx / 6);
      const n = stacks.get(bucket) || 0;
      stacks.set(bucket, n + 1);
      svg.append(s("circle", { class: "decline", cx: xx, cy: base - 8 - Math.min(n, 9) * 8, r: 4.5, fill: REASON_COLOR[m.reason] || "#d4a72c", dataset: { reason: m.reason } },
        s("title", {}, new Date(m.at).toLocaleString() + " · declined: " + m.reason + (m.amount_usd ? " · " + money(m.amount_usd, d.agent.currency) : "") + (m.merchant ? " · " + m.merchant : ""))));
    }
    // Lines for every mark; labels where there is room, freezes and revocations first.
    const PRIORITY = { revoke: 0, freeze: 1, unfreeze: 2, retire: 3, rotate: 4, issue: 5 };
    const labelled = [];
    const groups = new Map();
    for (const m of marks) {
      if (m.type === "decline") continue;
      const xx = x(m.at);
      const g = s("g", { class: "mark mark-" + m.type, dataset: { mark: m.type } },
        s("line", { class: "mark-line mark-" + m.type, x1: xx, x2: xx, y1: top - 4, y2: base }),
        s("title", {}, new Date(m.at).toLocaleString() + " · " + (MARK_LABEL[m.type] || m.type) + (m.actor ? " by " + m.actor : "") + (m.reason ? ": " + m.reason : "")));
      groups.set(g, { m, xx });
      svg.append(g);
    }
    const byPriority = [...groups.entries()].sort((a, b) => (PRIORITY[a[1].m.type] ?? 9) - (PRIORITY[b[1].m.type] ?? 9));
    for (const [g, { m, xx }] of byPriority) {
      if (labelled.some((lx) => Math.abs(lx - xx) < 64)) continue;
      const nearEnd = xx > W - PAD_R - 70;
      g.append(s("text", { class: "mark-label mark-" + m.type, x: nearEnd ? xx - 4 : xx + 4, y: top + 6, "text-anchor": nearEnd ? "end" : "start" }, MARK_LABEL[m.type] || m.type));
      labelled.push(xx);
    }
    if (marks.length === 0) svg.append(s("text", { x: W / 2, y: 70, "text-anchor": "middle" }, "No declines or freezes in the last " + ({ "24h": "24 hours", "7d": "7 days" }[span] || "7 days") + "."));
    return svg;
  }

  // ---------- routing and polling ----------

  function route() {
    const m = location.hash.match(/^#\/(agents|teams)\/(.+)$/);
    if (m) return { view: m[1] === "agents" ? "agent" : "team", id: decodeURIComponent(m[2]) };
    return /^#\/teams\/?$/.test(location.hash) ? { view: "teams" } : { view: "fleet" };
  }

  async function refresh() {
    const gen = generation;
    const r = route();
    try {
      if (r.view === "agent") {
        const d = await api("/dashboard/api/agents/" + encodeURIComponent(r.id));
        if (gen !== generation) return;
        const js = JSON.stringify(d);
        // Redrawing identical charts every poll would only make tooltips flicker.
        if (js !== lastAgentJSON || !document.getElementById("agent-title")) renderAgent(d);
        else refreshAgo();
        lastAgentJSON = js;
        document.title = r.id + " · cardwarden";
        if (!lastFleet) {
          api("/dashboard/api/fleet").then((f) => { lastFleet = f; renderSummary(f); }).catch(() => {});
        }
      } else if (r.view === "teams" || r.view === "team") {
        const path = r.view === "teams" ? "/dashboard/api/teams" : "/dashboard/api/teams/" + encodeURIComponent(r.id);
        const d = await api(path);
        if (gen !== generation) return;
        const js = JSON.stringify(d);
        const title = r.view === "teams" ? "teams-title" : "team-title";
        if (js !== lastAgentJSON || !document.getElementById(title)) (r.view === "teams" ? renderTeams : renderTeam)(d);
        else refreshAgo();
        lastAgentJSON = js;
        document.title = (r.view === "teams" ? "teams" : "team " + r.id) + " · cardwarden";
        if (!lastFleet) {
          api("/dashboard/api/fleet").then((f) => { lastFleet = f; renderSummary(f); }).catch(() => {});
        }
      } else {
        const f = await api("/dashboard/api/fleet");
        if (gen !== generation) return;
        lastFleet = f;
        pollMS = f.poll_ms || pollMS;
        renderFleet(f);
        document.title = "cardwarden";
      }
      const stale = document.getElementById("error");
      if (stale) stale.remove();
      setUpdated(true);
    } catch (err) {
      if (gen !== generation) return;
      setUpdated(false);
      if (err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        if (!["fleet", "agent-title", "teams-title", "team-title"].some((id) => document.getElementById(id))) {
          app.replaceChildren(h("div", { class: "panel" }, h("p", {}, "The dashboard needs the admin token. "), h("button", { class: "btn primary", type: "button", onclick: () => askToken() }, "Enter admin token")));
        }
        askToken("The dashboard needs the admin token.");
        return;
      }
      console.error("cardwarden dashboard: refresh failed:", err && err.stack ? err.stack : String(err));
      const box = h("div", { class: "error-box", id: "error" }, "Cannot refresh: " + err.message);
      const old = document.getElementById("error");
      if (old) old.replaceWith(box); else app.prepend(box);
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!document.hidden && !tokenDialog.open) await refresh();
      schedule();
    }, pollMS);
  }

  async function refreshNow() {
    clearTimeout(timer);
    await refresh();
    schedule();
  }

  window.addEventListener("hashchange", () => {
    generation++;
    lastAgentJSON = "";
    timelineSpan = "fit";
    app.replaceChildren(h("p", { class: "muted pad" }, "Loading…"));
    refreshNow();
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshNow(); });

  refreshNow();
})();
