// appt-tools dashboard: our own small script (no framework, nothing fetched from elsewhere).
// The server renders every page and fragment; this script swaps fragments in (search as you type,
// sorting, paging, months), runs the add/edit drawer, and sends changes with the CSRF token.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const csrf = ($('meta[name="csrf-token"]') || {}).content || "";
  const view = document.body.dataset.view;
  const zone = document.body.dataset.timezone || "UTC";
  const UNREACHABLE = "The server could not be reached. Check that it is running, then try again.";

  // --- talking to the server -------------------------------------------------------------------

  function signInAgain() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  async function call(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRF-Token"] = csrf;
      options.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (_) {
      return { ok: false, status: 0, data: { error: { message: UNREACHABLE } } };
    }
    if (response.status === 401) signInAgain();
    let data;
    try {
      data = await response.json();
    } catch (_) {
      data = { error: { message: `The server answered with an error (${response.status}). Try again.` } };
    }
    return { ok: response.ok, status: response.status, data };
  }

  async function fragment(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.status === 401) signInAgain();
    if (!response.ok) throw new Error(`The server answered with an error (${response.status}).`);
    return response.text();
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "dashboard-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let toastTimer = 0;
  function toast(message, bad = false) {
    const box = $("#toast");
    box.textContent = message;
    box.classList.toggle("bad", bad);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, bad ? 9000 : 5000);
  }

  function todayInZone() {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date());
    const get = (type) => parts.find((p) => p.type === type).value;
    return `${get("year")}-${get("month")}-${get("day")}`;
  }

  // --- the table -------------------------------------------------------------------------------

  let tableQuery = ($("#table") || { dataset: {} }).dataset.query || "";
  let tableLoads = 0;

  async function loadTable(query) {
    const region = $("#table-region");
    if (!region) return;
    const mine = ++tableLoads;
    $("#table-busy").hidden = false;
    try {
      const html = await fragment("/app/table?" + query);
      if (mine !== tableLoads) return; // a newer search is on its way
      region.innerHTML = html;
      tableQuery = query;
      history.replaceState(null, "", "/?view=table" + (query ? "&" + query : ""));
    } catch (err) {
      if (mine === tableLoads) toast(err.message || UNREACHABLE, true);
    } finally {
      if (mine === tableLoads) $("#table-busy").hidden = true;
    }
  }

  function controlsQuery() {
    const data = new FormData($("#table-controls"));
    data.delete("view");
    data.set("page", "1");
    const params = new URLSearchParams();
    for (const [k, v] of data) if (v !== "") params.set(k, v);
    return params.toString();
  }

  function setupTable() {
    const controls = $("#table-controls");
    if (!controls) return;
    let timer = 0;
    $("#search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => loadTable(controlsQuery()), 250);
    });
    controls.addEventListener("submit", (e) => { e.preventDefault(); loadTable(controlsQuery()); });
    for (const id of ["#status-filter", "#page-size", "#date-from", "#date-to"]) {
      $(id).addEventListener("change", () => loadTable(controlsQuery()));
    }
    document.addEventListener("click", (e) => {
      const link = e.target.closest("#table-region a[data-query], #table-controls a[data-query]");
      if (!link) return;
      e.preventDefault();
      syncControls(new URLSearchParams(link.dataset.query));
      loadTable(link.dataset.query);
    });
  }

  // The toolbar shows what a link asks for: its view (upcoming, past, all), text, status, dates, order.
  function syncControls(params) {
    const f = $("#table-controls").elements;
    const when = params.get("when") || "upcoming";
    f.when.value = when;
    f.sort.value = params.get("sort") || "start";
    f.order.value = params.get("order") || (when === "past" ? "desc" : "asc");
    f.q.value = params.get("q") || "";
    f.status.value = params.get("status") || "";
    f.date_from.value = params.get("date_from") || "";
    f.date_to.value = params.get("date_to") || "";
    for (const tab of $$(".when-tab[data-when]")) {
      const on = tab.dataset.when === when;
      tab.classList.toggle("on", on);
      if (on) tab.setAttribute("aria-current", "true"); else tab.removeAttribute("aria-current");
    }
  }

  // --- the calendar ----------------------------------------------------------------------------

  let calendarMonth = ($("#calendar") || { dataset: {} }).dataset.month || "";

  async function loadCalendar(month) {
    const region = $("#calendar-region");
    if (!region) return;
    $("#calendar-busy").hidden = false;
    try {
      region.innerHTML = await fragment("/app/calendar" + (month ? "?month=" + encodeURIComponent(month) : ""));
      calendarMonth = $("#calendar").dataset.month;
      history.replaceState(null, "", "/calendar?month=" + calendarMonth);
      const panel = $("#day-panel");
      if (panel && !panel.hidden) {
        const day = $(`.day[data-date="${panel.dataset.date}"]`);
        if (day) showDay(day); else panel.hidden = true;
      }
    } catch (err) {
      toast(err.message || UNREACHABLE, true);
      const busy = $("#calendar-busy");
      if (busy) busy.hidden = true;
    }
  }

  function showDay(day) {
    const panel = $("#day-panel");
    $$(".day.selected").forEach((d) => d.classList.remove("selected"));
    day.classList.add("selected");
    panel.dataset.date = day.dataset.date;
    $("#day-panel-title").textContent = day.dataset.title;
    const list = $("#day-panel-list");
    list.replaceChildren();
    for (const item of $$(".appt", day)) {
      const li = document.createElement("li");
      li.className = "day-item";
      const time = Object.assign(document.createElement("span"), { className: "t", textContent: item.dataset.time });
      const title = Object.assign(document.createElement("button"), { type: "button", className: "title-link", textContent: item.dataset.title });
      title.dataset.edit = item.dataset.edit;
      title.setAttribute("aria-label", item.getAttribute("aria-label"));
      const badge = Object.assign(document.createElement("span"), { className: "badge " + item.classList[1], textContent: item.dataset.status });
      const who = Object.assign(document.createElement("span"), { className: "dim", textContent: item.dataset.attendee });
      li.append(time, " ", title, " ", badge, " ", who);
      if (item.dataset.link) {
        const join = Object.assign(document.createElement("a"), { href: item.dataset.link, className: "join", textContent: "Join", target: "_blank", rel: "noopener noreferrer" });
        li.append(" ", join);
      } else if (item.dataset.where) {
        li.append(Object.assign(document.createElement("span"), { className: "where-text", textContent: item.dataset.where }));
      }
      list.appendChild(li);
    }
    $("#day-panel-empty").hidden = list.children.length > 0;
    $("#day-panel-book").hidden = day.dataset.date < todayInZone();
    panel.hidden = false;
    $("#day-panel-title").focus();
  }

  function setupCalendar() {
    if (!$("#calendar-region")) return;
    document.addEventListener("click", (e) => {
      const nav = e.target.closest("#calendar-region a[data-month]");
      if (nav) { e.preventDefault(); loadCalendar(nav.dataset.month); return; }
      if (e.target.closest("[data-edit]")) return; // handled below, for table and calendar alike
      const day = e.target.closest("#calendar-region .day");
      if (day) showDay(day);
    });
    $("#day-panel-close").addEventListener("click", () => {
      const date = $("#day-panel").dataset.date;
      $("#day-panel").hidden = true;
      $$(".day.selected").forEach((d) => d.classList.remove("selected"));
      const back = $(`.day[data-date="${date}"] .date`);
      if (back) back.focus();
    });
    $("#day-panel-book").addEventListener("click", () => openDrawer(null, $("#day-panel").dataset.date));
  }

  function refreshView() {
    if (view === "table") return loadTable(tableQuery);
    if (view === "calendar") return loadCalendar(calendarMonth);
    return undefined;
  }

  // --- the add/edit drawer ---------------------------------------------------------------------

  const drawer = $("#drawer");
  const form = $("#appointment-form");
  const state = { id: null, original: null, start: null, key: newKey(), busy: false, slotLoads: 0 };

  function clearErrors(root) {
    $$(".field-error", root).forEach((el) => { el.textContent = ""; });
    $$(".invalid", root).forEach((el) => { el.classList.remove("invalid"); el.removeAttribute("aria-invalid"); });
    const general = $("#form-error", root) || $("#settings-error", root);
    if (general) general.hidden = true;
  }

  function clearField(root, name) {
    if (!name) return;
    const slot = $(`.field-error[data-for="${name}"]`, root);
    if (slot) slot.textContent = "";
    const input = root.elements && root.elements[name];
    if (input && input.classList) { input.classList.remove("invalid"); input.removeAttribute("aria-invalid"); }
  }

  function showError(root, error, generalSel) {
    const where = error.field ? $(`.field-error[data-for="${error.field}"]`, root) : null;
    const fields = error.fields || (where ? { [error.field]: error.message } : {});
    let placed = false;
    for (const [name, message] of Object.entries(fields)) {
      const slot = $(`.field-error[data-for="${name}"]`, root);
      if (!slot) continue;
      slot.textContent = message;
      const input = root.elements ? root.elements[name] : null;
      if (input && input.classList) {
        input.classList.add("invalid");
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", slot.id);
        if (!placed) input.focus();
      } else if (!placed && name === "start") {
        const first = $(".slot", root) || $("#date");
        if (first) first.focus();
      }
      placed = true;
    }
    if (!placed) {
      const general = $(generalSel, root);
      general.textContent = error.message;
      general.hidden = false;
    }
  }

  function progress(text) {
    const box = $("#progress");
    box.hidden = !text;
    $("#progress-text").textContent = text || "";
    state.busy = Boolean(text);
    $$("button", form).forEach((b) => { if (b.id !== "drawer-close") b.disabled = state.busy; });
  }

  // While the drawer is open everything else is inert: focus stays in it, and a screen reader reads
  // only it. On closing, focus goes back where it was (or to the row it was about, if that was redrawn).
  let opener = null;
  function trapIn(panel, on) {
    for (const el of document.body.children) {
      if (el !== panel && el.id !== "toast" && el.id !== "scrim" && el.tagName !== "SCRIPT" && el.tagName !== "DIALOG") el.inert = on;
    }
  }

  function closeDrawer() {
    drawer.hidden = true;
    $("#scrim").hidden = true;
    trapIn(drawer, false);
    returnFocus();
  }

  function returnFocus() {
    const back = opener;
    opener = null;
    if (back && back.isConnected) { back.focus(); return; }
    const row = state.id && $(`#main [data-edit="${CSS.escape(state.id)}"]`);
    if (row) row.focus(); else if ($("#main")) $("#main").focus();
  }

  function slotButton(slot, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "slot";
    b.setAttribute("role", "radio");
    b.setAttribute("aria-checked", "false");
    b.tabIndex = -1;
    b.dataset.start = slot.start;
    b.textContent = label || slot.time;
    b.title = `${slot.day}, ${slot.time}`;
    return b;
  }

  function showSlots(slots, labelled) {
    const box = $("#slots");
    box.replaceChildren(...slots.map((s) => slotButton(s, labelled ? `${s.day.split(",")[0]} ${s.time}` : null)));
    if (box.firstChild) box.firstChild.tabIndex = 0; // one tab stop for the group; arrows move within
    state.start = null;
  }

  function chooseSlot(b) {
    for (const s of $$(".slot", $("#slots"))) { s.setAttribute("aria-checked", "false"); s.tabIndex = -1; }
    b.setAttribute("aria-checked", "true");
    b.tabIndex = 0;
    state.start = b.dataset.start;
    clearField(form, "start");
  }

  async function loadSlots(date) {
    const mine = ++state.slotLoads;
    const message = $("#slots-message");
    const next = $("#next-free-day");
    clearErrors($("#time-picker"));
    next.hidden = true;
    $("#slots").replaceChildren();
    state.start = null;
    if (!date) { message.textContent = "Choose a day to see its free times."; return; }
    $("#slots-busy").hidden = false;
    message.textContent = "Looking up free times…";
    const typeId = state.original ? state.original.event_type_id : form.elements.event_type_id.value;
    const query = new URLSearchParams({ date });
    if (typeId) query.set("event_type_id", typeId);
    const { ok, data } = await call("GET", "/app/slots?" + query);
    if (mine !== state.slotLoads) return;
    $("#slots-busy").hidden = true;
    if (!ok) {
      message.textContent = "";
      showError(form, { ...data.error, field: data.error.field === "start" ? "start" : "date" }, "#form-error");
      return;
    }
    if (data.empty) {
      message.textContent = data.message;
      if (data.next_date) {
        next.textContent = `Show ${data.next_day}`;
        next.dataset.date = data.next_date;
        next.hidden = false;
      }
      return;
    }
    message.textContent = `${data.slots.length} free time${data.slots.length === 1 ? "" : "s"} on ${data.day}:`;
    showSlots(data.slots, false);
  }

  const configured = document.body.dataset.configured === "true";

  // --- the event type's questions (Cal.com booking fields), asked when booking --------------------

  const QUESTIONS = (() => {
    const node = $("#event-type-questions");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (_) { return {}; }
  })();

  function renderQuestions() {
    const list = $("#questions-list");
    if (!list) return;
    const asked = QUESTIONS[form.elements.event_type_id.value] || [];
    list.replaceChildren();
    for (const q of asked) {
      const name = `answers.${q.slug}`;
      const id = `answer-${q.slug}`;
      const error = Object.assign(document.createElement("span"), { className: "field-error", id: `error-${id}` });
      error.dataset.for = name;
      const label = Object.assign(document.createElement("label"), { className: "field" });
      const title = document.createElement("span");
      title.textContent = q.label + (q.required ? "" : " (optional)");
      let input;
      if (q.type === "boolean") {
        label.className = "field check";
        input = Object.assign(document.createElement("input"), { type: "checkbox" });
        label.append(input, title, error);
      } else if (q.options && q.options.length) {
        const many = q.type === "checkbox" || q.type === "multiselect";
        input = Object.assign(document.createElement("select"), { multiple: many });
        if (!many) input.append(Object.assign(document.createElement("option"), { value: "", textContent: "Choose…" }));
        for (const o of q.options) input.append(Object.assign(document.createElement("option"), { value: o, textContent: o }));
        label.append(title, input, error);
      } else {
        const long = q.type === "textarea";
        input = document.createElement(long ? "textarea" : "input");
        if (long) input.rows = 2; else input.type = q.type === "number" ? "number" : "text";
        input.maxLength = 1000;
        label.append(title, input, error);
      }
      input.name = name;
      input.id = id;
      input.required = Boolean(q.required) && q.type !== "boolean";
      input.dataset.kind = q.type;
      list.append(label);
    }
    $("#questions").hidden = asked.length === 0;
  }

  function collectAnswers() {
    const answers = {};
    for (const input of $$("[name^='answers.']", form)) {
      const slug = input.name.slice("answers.".length);
      if (input.type === "checkbox") { if (input.checked) answers[slug] = true; continue; }
      if (input.multiple) {
        const chosen = [...input.selectedOptions].map((o) => o.value);
        if (chosen.length) answers[slug] = chosen;
        continue;
      }
      if (input.value.trim()) answers[slug] = input.value.trim();
    }
    return answers;
  }

  function showAnswers(a) {
    const list = $("#answers-list");
    list.replaceChildren();
    for (const item of a.answers || []) {
      list.append(Object.assign(document.createElement("dt"), { textContent: item.question }),
                  Object.assign(document.createElement("dd"), { textContent: item.answer }));
    }
    $("#answers").hidden = !(a.answers || []).length;
  }

  // --- the host's decision on a pending booking ---------------------------------------------------

  async function decide(id, verb) {
    toast(verb === "confirm" ? "Confirming in Cal.com…" : "Declining in Cal.com…");
    const { ok, data } = await call("POST", `/app/appointments/${encodeURIComponent(id)}/${verb}`, {});
    if (!ok) { toast((data.error || {}).message || UNREACHABLE, true); return; }
    if (!drawer.hidden && state.id === id) closeDrawer();
    toast(data.message);
    await refreshView();
    if (!document.activeElement || document.activeElement === document.body) returnFocus();
  }

  async function openDrawer(id, date) {
    if (drawer.hidden) opener = document.activeElement;
    form.reset();
    clearErrors(form);
    progress("");
    state.id = id;
    state.original = null;
    state.start = null;
    state.key = newKey();
    $("#slots").replaceChildren();
    $("#history-list").replaceChildren();
    $("#questions-list").replaceChildren();
    $("#questions").hidden = true;
    $("#answers").hidden = true;
    $("#drawer-confirm").hidden = true;
    $("#drawer-decline").hidden = true;
    $("#date").min = todayInZone();
    drawer.classList.toggle("editing", Boolean(id));
    for (const name of ["to_number", "from_number", "business_name"]) form.elements[name].readOnly = Boolean(id);
    form.elements.call_type.disabled = Boolean(id);
    $("#drawer-status").hidden = true;
    $("#time-picker").hidden = false;
    $("#not-movable").hidden = true;
    const setup = !id && !configured;
    drawer.classList.toggle("setup-needed", setup);
    $("#drawer-setup").hidden = !setup;
    drawer.hidden = false;
    $("#scrim").hidden = false;
    trapIn(drawer, true);
    if (setup) {
      $("#drawer-title").textContent = "New appointment";
      $("#drawer-setup-link").focus();
      return;
    }
    if (!id) {
      $("#drawer-title").textContent = "New appointment";
      $("#save").textContent = "Book appointment";
      form.elements.call_type.value = "web";
      form.elements.date.value = date || "";
      renderQuestions();
      await loadSlots(date || "");
      form.elements.attendee_name.focus();
      return;
    }
    $("#drawer-title").textContent = "Edit appointment";
    $("#save").textContent = "Save changes";
    progress("Loading…");
    const { ok, data } = await call("GET", `/app/appointments/${encodeURIComponent(id)}`);
    progress("");
    if (!ok) { showError(form, data.error, "#form-error"); return; }
    const a = data.appointment;
    state.original = a;
    for (const name of ["title", "attendee_name", "attendee_email", "to_number", "from_number", "call_type", "business_name", "description", "label"]) {
      form.elements[name].value = a[name] || "";
    }
    showFacts(a);
    showAnswers(a);
    $("#drawer-confirm").hidden = !a.pending;
    $("#drawer-decline").hidden = !a.pending;
    $("#event-type-shown").textContent = a.event_type;
    $("#current-time").textContent = `Now booked for ${a.when}. Pick a new time below to move it.`;
    const badge = $("#drawer-status");
    badge.textContent = a.status_label;
    badge.className = "badge " + a.status;
    badge.hidden = false;
    $("#drawer-cancel-appointment").hidden = !a.changeable;
    $("#time-picker").hidden = !a.changeable;
    $("#not-movable").hidden = a.changeable;
    if (!a.changeable) $("#current-time").textContent = `Booked for ${a.when}.`;
    for (const h of a.history || []) {
      const li = document.createElement("li");
      li.textContent = `${h.at}: ${h.action}. ${h.detail}`;
      $("#history-list").appendChild(li);
    }
    form.elements.title.focus();
    if (a.changeable) {
      form.elements.date.value = a.local_date >= todayInZone() ? a.local_date : todayInZone();
      await loadSlots(form.elements.date.value);
    }
  }

  // Where the meeting is (a link, an address, a phone call) and the booking uid the guide's
  // troubleshooting asks for.
  function showFacts(a) {
    const where = $("#fact-where");
    where.replaceChildren();
    const label = Object.assign(document.createElement("span"), { className: "dim", textContent: "Where " });
    if (a.where_kind === "link") {
      const link = Object.assign(document.createElement("a"), { href: a.where, textContent: a.where, target: "_blank", rel: "noopener noreferrer" });
      where.append(label, link, a.past ? " (the meeting has ended)" : "");
    } else if (a.where_kind !== "none") {
      where.append(label, a.where);
    } else {
      where.append(label, "No place or link was given in Cal.com.");
    }
    $("#booking-uid").textContent = a.booking_uid || "none yet (not confirmed by Cal.com)";
    $("#copy-uid").hidden = !a.booking_uid;
  }

  async function submitDrawer(e) {
    e.preventDefault();
    if (state.busy) return;
    clearErrors(form);
    const f = form.elements;
    const details = {
      title: f.title.value,
      attendee_name: f.attendee_name.value,
      attendee_email: f.attendee_email.value,
      description: f.description.value,
      label: f.label.value,
    };
    let url, body, doing;
    if (!state.id) {
      url = "/app/appointments";
      body = { ...details, event_type_id: f.event_type_id.value, to_number: f.to_number.value, from_number: f.from_number.value,
               business_name: f.business_name.value,
               call_type: f.call_type.value, start: state.start, idempotency_key: state.key,
               answers: collectAnswers() };
      doing = "Booking in Cal.com…";
    } else {
      url = `/app/appointments/${encodeURIComponent(state.id)}`;
      body = { ...details };
      if (state.start) { body.start = state.start; body.idempotency_key = state.key; }
      doing = state.start ? "Moving it in Cal.com…" : "Saving…";
    }
    progress(doing);
    const { ok, status, data } = await call("POST", url, body);
    progress("");
    if (status > 0 && status < 500) state.key = newKey(); // a definite answer: the next try is a new request
    if (ok) {
      closeDrawer();
      toast(data.message);
      await refreshView();
      if (!document.activeElement || document.activeElement === document.body) returnFocus();
      return;
    }
    const error = data.error || { message: UNREACHABLE };
    showError(form, error, "#form-error");
    if (error.alternatives && error.alternatives.length) {
      $("#slots-message").textContent = "Nearest free times:";
      showSlots(error.alternatives, true);
    }
    if (error.saved) refreshView();
  }

  function setupDrawer() {
    if (!drawer) return;
    document.addEventListener("click", (e) => {
      const edit = e.target.closest("[data-edit]");
      if (edit) { e.preventDefault(); openDrawer(edit.dataset.edit); return; }
      const cancel = e.target.closest("[data-cancel]");
      if (cancel) { e.preventDefault(); confirmCancel(cancel.dataset.cancel, cancel.dataset.what); return; }
      const decision = e.target.closest("[data-decide]");
      if (decision) { e.preventDefault(); decide(decision.dataset.id, decision.dataset.decide); }
    });
    $("#drawer-confirm").addEventListener("click", () => { if (state.original) decide(state.original.id, "confirm"); });
    $("#drawer-decline").addEventListener("click", () => { if (state.original) decide(state.original.id, "decline"); });
    $("#new-appointment").addEventListener("click", () => openDrawer(null, ""));
    $("#drawer-close").addEventListener("click", closeDrawer);
    $("#scrim").addEventListener("click", () => { if (!state.busy) closeDrawer(); });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !drawer.hidden && !state.busy) closeDrawer(); });
    // Tab from the drawer's last control goes to its first, Shift+Tab from the first to the last.
    drawer.addEventListener("keydown", (e) => {
      if (e.key !== "Tab") return;
      const stops = $$("a[href], button, input, select, textarea, summary, [tabindex='0']", drawer)
        .filter((el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0);
      if (!stops.length) return;
      const first = stops[0], last = stops[stops.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    form.addEventListener("submit", submitDrawer);
    form.addEventListener("input", (e) => clearField(form, e.target.name));
    $("#date").addEventListener("change", () => loadSlots(form.elements.date.value));
    form.elements.event_type_id.addEventListener("change", () => { renderQuestions(); loadSlots(form.elements.date.value); });
    $("#next-free-day").addEventListener("click", (e) => {
      form.elements.date.value = e.target.dataset.date;
      loadSlots(e.target.dataset.date);
    });
    $("#slots").addEventListener("click", (e) => {
      const b = e.target.closest(".slot");
      if (b) chooseSlot(b);
    });
    $("#slots").addEventListener("keydown", (e) => {
      const all = $$(".slot", $("#slots"));
      const at = all.indexOf(e.target);
      if (at < 0) return;
      const columns = Math.max(1, Math.round($("#slots").clientWidth / e.target.offsetWidth));
      const step = { ArrowRight: 1, ArrowDown: columns, ArrowLeft: -1, ArrowUp: -columns, Home: -at, End: all.length - 1 - at }[e.key];
      if (e.key === " " || e.key === "Enter") { e.preventDefault(); chooseSlot(e.target); return; }
      if (step === undefined) return;
      e.preventDefault();
      const next = all[Math.min(all.length - 1, Math.max(0, at + step))];
      chooseSlot(next);
      next.focus();
    });
    $("#copy-uid").addEventListener("click", async () => {
      const uid = $("#booking-uid").textContent;
      try {
        await navigator.clipboard.writeText(uid);
        toast("Copied the booking uid " + uid + ".");
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents($("#booking-uid"));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        toast("Selected the booking uid: press Ctrl+C (⌘C on a Mac) to copy it.");
      }
    });
    $("#drawer-cancel-appointment").addEventListener("click", () => {
      const a = state.original;
      if (a) confirmCancel(a.id, `${a.title} — ${a.when}`);
    });
  }

  // --- cancelling, after confirmation -----------------------------------------------------------

  function confirmCancel(id, what) {
    const dialog = $("#confirm");
    const before = document.activeElement;
    $("#confirm-text").textContent = `${what}. The attendee is told by Cal.com. This cannot be undone; the appointment stays in the table as cancelled.`;
    $("#confirm-reason").value = "";
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (before && before.isConnected) before.focus();
      if (dialog.returnValue !== "yes") return;
      const reason = $("#confirm-reason").value.trim();
      toast("Cancelling in Cal.com…");
      const { ok, data } = await call("POST", `/app/appointments/${encodeURIComponent(id)}/cancel`,
                                      { reason: reason || null, idempotency_key: newKey() });
      if (!ok) { toast((data.error || {}).message || UNREACHABLE, true); return; }
      if (!drawer.hidden && state.id === id) closeDrawer();
      toast(data.message);
      await refreshView();
      if (!document.activeElement || document.activeElement === document.body) returnFocus();
    };
    dialog.showModal();
    $("#confirm-no").focus();
  }

  // --- settings --------------------------------------------------------------------------------

  function setupSettings() {
    const settings = $("#settings-form");
    if (!settings) return;
    const busy = (on) => {
      $("#settings-busy").hidden = !on;
      $$("button", settings).forEach((b) => { b.disabled = on; });
    };
    settings.addEventListener("input", (e) => clearField(settings, e.target.name));
    settings.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearErrors(settings);
      $("#settings-saved").hidden = true;
      const body = {};
      for (const name of ["calcom_api_key", "event_type_id", "timezone", "duration_minutes", "business_name", "language"]) {
        const input = settings.elements[name];
        if (input && !input.disabled) body[name] = input.value;
      }
      busy(true);
      const { ok, data } = await call("POST", "/app/settings", body);
      busy(false);
      if (!ok) { showError(settings, data.error || { message: UNREACHABLE }, "#settings-error"); return; }
      settings.elements.calcom_api_key.value = "";
      $("#key-shown").textContent = data.key_shown;
      $("#stored-key-shown").textContent = data.stored_key_shown;
      const saved = $("#settings-saved");
      saved.textContent = [data.message, ...(data.notes || [])].join(" ");
      saved.hidden = false;
    });
    $("#refresh-event-types").addEventListener("click", async () => {
      const out = $("#refresh-result");
      out.textContent = "Asking Cal.com for the event types…";
      $("#refresh-busy").hidden = false;
      busy(true);
      const { ok, data } = await call("POST", "/app/event-types/refresh", {});
      busy(false);
      $("#refresh-busy").hidden = true;
      if (!ok) { out.textContent = ""; showError(settings, { ...data.error, field: "event_type_id" }, "#settings-error"); return; }
      const select = $("#event-type-id");
      const chosen = select.value;
      const first = select.options[0];
      first.textContent = data.event_types.length ? "First bookable one" : "None synced yet: refresh";
      select.replaceChildren(first, ...data.event_types.map((t) => {
        const o = document.createElement("option");
        o.value = String(t.id);
        o.textContent = `${t.title} (${t.length_minutes} min)${t.hidden ? " — hidden" : ""}`;
        return o;
      }));
      select.value = chosen;
      out.textContent = data.message;
    });
    $("#test-connection").addEventListener("click", async () => {
      const out = $("#test-result");
      out.hidden = false;
      out.replaceChildren(Object.assign(document.createElement("p"), { textContent: "Testing the connection to Cal.com…" }));
      busy(true);
      const { ok, data } = await call("POST", "/app/settings/test", {});
      busy(false);
      if (!ok) { out.replaceChildren(Object.assign(document.createElement("p"), { className: "fail", textContent: (data.error || {}).message || UNREACHABLE })); return; }
      const lines = [Object.assign(document.createElement("p"), { className: "summary", textContent: data.summary })];
      for (const check of data.checks) {
        lines.push(Object.assign(document.createElement("p"), { className: check.ok ? "pass" : "fail", textContent: check.text }));
      }
      out.replaceChildren(...lines);
    });
  }

  if (matchMedia("(max-width: 700px)").matches) $$("details.banner").forEach((d) => { d.open = false; });
  setupTable();
  setupCalendar();
  setupDrawer();
  setupSettings();
})();
