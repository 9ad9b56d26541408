// The live dashboard, served as is: the current visitors pushed by the stream, and the
// last 30 minutes, top pages, sources and countries read every few minutes.
//
// The secret token is kept in sessionStorage (this tab only, gone when it closes) and
// sent in the Authorization header only: never in a URL, so never in a log or the
// browser's history. EventSource cannot send that header, so the stream is read with
// fetch() and parsed here. What the API returns is shown with textContent only:
// paths and referrers come from whoever sends a pageview.
(() => {
  "use strict";

  const STORED = "rtv.dashboard"; // the sessionStorage key
  const API = "/api/v1/realtime";
  const MINUTES = 30;
  const BREAKDOWNS = ["page", "source", "country"];
  // History and the three breakdowns: one request of the plan's budget each.
  const CALLS_PER_REFRESH = 1 + BREAKDOWNS.length;
  const MIN_REFRESH_MS = 15_000;
  const OUTAGE_RETRY_MS = 15_000;
  const STALL_MS = 45_000; // the server pings every 15 s: three missed pings, reconnect
  const MAX_BACKOFF_MS = 60_000;
  const CANNOT_READ = "This key cannot read this resource";
  const FAILED_AUTH = "Too many failed authentication attempts";

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("signin"),
    websiteId: $("website-id"),
    token: $("token"),
    board: $("board"),
    site: $("site"),
    signout: $("signout"),
    message: $("message"),
    count: $("count"),
    countLabel: $("count-label"),
    state: $("state"),
    stateText: $("state-text"),
    chart: $("chart"),
    chartBox: $("chart-box"),
    chartTotal: $("chart-total"),
    refresh: $("refresh"),
    lists: { page: $("pages"), source: $("sources"), country: $("countries") },
  };
  const numbers = new Intl.NumberFormat();
  let regions = null;
  try {
    regions = new Intl.DisplayNames(["en"], { type: "region" });
  } catch {} // codes, then

  // The signed-in session: a new object each time, so that the late answers of an
  // earlier one see that they are stale and drop out.
  let run = null;

  // --- Storage ----------------------------------------------------------------------

  const load = () => {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORED));
      return saved?.websiteId && saved?.token ? saved : null;
    } catch {
      return null; // storage blocked or garbled: ask again
    }
  };
  const save = (session) => {
    try {
      sessionStorage.setItem(STORED, JSON.stringify(session));
    } catch {} // then it lasts as long as the page
  };
  const forget = () => {
    try {
      sessionStorage.removeItem(STORED);
    } catch {}
  };

  // --- Signing in and out -----------------------------------------------------------

  function start(session) {
    stop();
    run = {
      session,
      problems: {}, // by part of the page: "stream", "refresh"
      limit: 0, // the plan's requests an hour, from X-RateLimit-Limit
      history: null, // the minutes last drawn
      loaded: new Set(), // the breakdowns read at least once
      connection: null,
      streamTimer: 0,
      stallTimer: 0,
      failures: 0,
      retryMs: 2000,
      refreshTimer: 0,
      nextRefresh: 0,
      intervalMs: 0,
      due: false,
      ticker: setInterval(tick, 1000),
    };
    ui.form.hidden = true;
    ui.board.hidden = ui.site.hidden = ui.signout.hidden = false;
    document.body.classList.add("signed-in");
    ui.site.textContent = session.websiteId;
    setCount(null);
    setState("connecting", "Connecting…");
    for (const by of BREAKDOWNS) note(ui.lists[by], "Loading…");
    drawChart(null, "Loading…");
    showProblems();
    connect(run);
    refresh(run);
  }

  function stop() {
    if (!run) return;
    const old = run;
    run = null;
    old.connection?.abort();
    clearTimeout(old.streamTimer);
    clearTimeout(old.stallTimer);
    clearTimeout(old.refreshTimer);
    clearInterval(old.ticker);
  }

  function showForm(websiteId) {
    ui.board.hidden = ui.site.hidden = ui.signout.hidden = true;
    document.body.classList.remove("signed-in");
    ui.form.hidden = false;
    ui.websiteId.value = websiteId;
    ui.token.value = "";
    document.title = "Live visitors";
    (websiteId ? ui.token : ui.websiteId).focus();
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const session = { websiteId: ui.websiteId.value.trim(), token: ui.token.value.trim() };
    if (!session.websiteId || !session.token) {
      say([{ level: "error", title: "Both fields are needed:", text: "the website id and its secret API token." }]);
      (session.websiteId ? ui.token : ui.websiteId).focus();
      return;
    }
    ui.token.value = "";
    save(session);
    start(session);
  });

  ui.signout.addEventListener("click", () => {
    stop();
    forget();
    say([]);
    showForm("");
  });

  // What no retry can mend: stop, forget the token, ask again.
  function fail(mine, problem) {
    if (run !== mine) return;
    stop();
    forget();
    say([problem]);
    showForm(mine.session.websiteId);
  }

  // --- Messages ---------------------------------------------------------------------

  // Each part of the page reports its own problem; the same message twice shows once.
  function report(mine, part, problem) {
    if (run !== mine) return;
    mine.problems[part] = problem;
    showProblems();
  }

  function showProblems() {
    // By title: the stream's and the refresh's rate limit differ by a second or so.
    const seen = new Set();
    say(Object.values(run.problems).filter((p) => p && !seen.has(p.title) && seen.add(p.title)));
  }

  function say(problems) {
    ui.message.replaceChildren(
      ...problems.map((problem) => {
        const box = document.createElement("p");
        const title = document.createElement("strong");
        box.className = `notice ${problem.level}`;
        title.textContent = problem.title;
        box.append(title, ` ${problem.text}`);
        return box;
      }),
    );
  }

  // What an answer other than 200 means to the reader, and what comes next. `kind`:
  // "fatal" stops the page, "wait" retries after `retryMs` (from Retry-After),
  // "outage" retries, later and later while it lasts.
  function problemOf(mine, status, error, retryAfterMs) {
    const site = `“${mine.session.websiteId}”`;
    if (status === 401) {
      return {
        kind: "fatal",
        level: "error",
        title: "Wrong token:",
        text: `the service does not accept this secret token for the website ${site}. It may be mistyped, revoked, or another website’s.`,
      };
    }
    if (status === 404) {
      return {
        kind: "fatal",
        level: "error",
        title: "Unknown website:",
        text: `there is no website ${site} on this service. Check the website id.`,
      };
    }
    if (status === 403 && error === CANNOT_READ) {
      return {
        kind: "fatal",
        level: "error",
        title: "That is a public key:",
        text: "a public key (vt_pub_…) can only show the live count on your own pages. The dashboard needs the website’s secret token (vt_…, made by “realtime-visitors tokens create” without --public).",
      };
    }
    if (status === 400 || status === 403) {
      return { kind: "fatal", level: "error", title: "Refused:", text: `${error || "the service refused the request"}.` };
    }
    if (status === 429) {
      const retryMs = retryAfterMs || 60_000;
      if (error === FAILED_AUTH) {
        return {
          kind: "wait",
          retryMs,
          level: "error",
          title: "Too many wrong tokens:",
          text: `too many wrong tokens were tried for this website from your address. Trying again ${when(retryMs)}.`,
        };
      }
      const plan = mine.limit
        ? `this website’s plan allows ${numbers.format(mine.limit)} requests an hour and they are spent.`
        : "this website’s hourly budget of requests is spent.";
      return {
        kind: "wait",
        retryMs,
        rate: true,
        level: "warn",
        title: "Rate limit reached:",
        text: `${plan} The service accepts requests again ${when(retryMs)}; until then what is shown may be out of date.`,
      };
    }
    // 503, another 5xx, or no answer at all.
    return {
      kind: "outage",
      level: "warn",
      title: "Service unavailable:",
      text: `${status ? "the service cannot reach its database right now" : "the service cannot be reached (network error)"}. The dashboard keeps trying; what it shows may be out of date.`,
    };
  }

  const when = (ms) => `at ${clock(Date.now() + ms, true)} (in ${duration(ms)})`;

  // --- Reading the API --------------------------------------------------------------

  function request(mine, path, params, signal) {
    const query = new URLSearchParams({ websiteId: mine.session.websiteId, ...params });
    return fetch(`${API}${path}?${query}`, {
      headers: { Authorization: `Bearer ${mine.session.token}` },
      cache: "no-store",
      signal,
    });
  }

  // {body, remaining} or {problem}; never throws.
  async function read(mine, path, params) {
    try {
      const response = await request(mine, path, params);
      rememberLimit(mine, response);
      const body = await response.json().catch(() => ({}));
      if (!response.ok) return { problem: problemFrom(mine, response, body) };
      return { body, remaining: Number(response.headers.get("X-RateLimit-Remaining") ?? Infinity) };
    } catch {
      return { problem: problemOf(mine, 0) };
    }
  }

  function problemFrom(mine, response, body) {
    const retryAfter = Number(response.headers.get("Retry-After"));
    return problemOf(mine, response.status, body?.error, retryAfter > 0 ? retryAfter * 1000 : 0);
  }

  function rememberLimit(mine, response) {
    const limit = Number(response.headers.get("X-RateLimit-Limit"));
    if (limit > 0) mine.limit = limit;
  }

  // --- The live count: Server-Sent Events over fetch --------------------------------

  async function connect(mine) {
    if (run !== mine) return;
    const connection = new AbortController();
    mine.connection = connection;
    let heard = false;
    watch(mine, connection);
    try {
      const response = await request(mine, "/stream", {}, connection.signal);
      rememberLimit(mine, response);
      if (!response.ok) {
        const problem = problemFrom(mine, response, await response.json().catch(() => ({})));
        if (problem.kind === "fatal") return fail(mine, problem);
        report(mine, "stream", problem);
        return reconnect(mine, problem.kind === "wait" ? problem.retryMs : null);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parse = parser((event) => {
        heard = true;
        onEvent(mine, event);
      });
      for (;;) {
        const { done, value } = await reader.read();
        if (run !== mine) return reader.cancel();
        if (done) break;
        watch(mine, connection);
        parse(value);
      }
    } catch {
      if (run !== mine || mine.connection !== connection) return;
      // Aborted by the watch: a dead connection, not an outage.
      if (!connection.signal.aborted) report(mine, "stream", problemOf(mine, 0));
    }
    // The server closed the stream (a restart, the website deleted: the next opening
    // says so) or the network dropped it. Each opening costs one request of the
    // budget: back off while nothing gets through.
    if (run === mine && mine.connection === connection) reconnect(mine, heard ? mine.retryMs : null);
  }

  // A connection silent for longer than the pings allow is dead (a proxy may keep it
  // open): drop it, which ends connect(), which opens another.
  function watch(mine, connection) {
    clearTimeout(mine.stallTimer);
    mine.stallTimer = setTimeout(() => connection.abort(), STALL_MS);
  }

  function reconnect(mine, delayMs) {
    if (run !== mine) return;
    clearTimeout(mine.stallTimer);
    mine.connection?.abort();
    mine.connection = null;
    if (delayMs == null) {
      delayMs = Math.min(MAX_BACKOFF_MS, mine.retryMs * 2 ** mine.failures);
      delayMs *= 0.8 + Math.random() * 0.4; // many dashboards do not all come back at once
      mine.failures += 1;
    }
    setState("offline", `Reconnecting at ${clock(Date.now() + delayMs, true)}`);
    mine.streamTimer = setTimeout(() => connect(mine), delayMs);
  }

  function onEvent(mine, event) {
    if (event.retry) mine.retryMs = event.retry;
    if (event.type === "visitors") {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      mine.failures = 0;
      report(mine, "stream", null);
      setCount(data.currentVisitors, data.timestamp);
      setState("live", "Live");
      // The service is back: a refresh that failed for its outage (which spent no
      // budget) need not wait for its turn.
      if (mine.problems.refresh?.kind === "outage" && mine.nextRefresh) refresh(mine);
    } else if (event.type === "unavailable") {
      report(mine, "stream", {
        level: "warn",
        title: "Service unavailable:",
        text: "the service cannot reach its database right now. The live count comes back by itself when it does; what is shown may be out of date.",
      });
      setState("offline", "Waiting for the service");
    }
  }

  // The text/event-stream format (WHATWG HTML, "Server-sent events"): lines end with
  // CRLF, LF or CR; a blank line dispatches the event; a line starting ":" is a
  // comment (the server's ping). `id` is not kept: it is the count's time, which the
  // data's timestamp gives too.
  function parser(dispatch) {
    let buffer = "";
    let type = "";
    let data = [];
    let retry = 0;
    const line = (text) => {
      if (text === "") {
        if (data.length) dispatch({ type: type || "message", data: data.join("\n"), retry });
        [type, data, retry] = ["", [], 0];
        return;
      }
      if (text.startsWith(":")) return;
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
    };
    return (chunk) => {
      let text = buffer + chunk;
      // A CR at the end may be the first half of a CRLF: wait for what follows.
      const held = text.endsWith("\r") ? "\r" : "";
      if (held) text = text.slice(0, -1);
      const lines = text.split(/\r\n|\r|\n/);
      buffer = lines.pop() + held;
      lines.forEach(line);
    };
  }

  function setCount(visitors, timestamp) {
    ui.count.classList.toggle("pending", visitors == null);
    if (visitors == null) {
      ui.count.textContent = "–";
      ui.countLabel.textContent = "current visitors";
      return;
    }
    ui.count.textContent = numbers.format(visitors);
    ui.count.title = timestamp ? `Counted at ${clock(Date.parse(timestamp), true)}` : "";
    ui.countLabel.textContent = visitors === 1 ? "current visitor" : "current visitors";
    document.title = `${numbers.format(visitors)} · ${run.session.websiteId} · Live visitors`;
  }

  function setState(state, text) {
    ui.board.classList.toggle("stale", state !== "live");
    ui.state.className = `state ${state}`;
    ui.stateText.textContent = text;
  }

  // --- History and breakdowns, within half the plan's budget ------------------------

  async function refresh(mine) {
    if (run !== mine) return;
    mine.due = false;
    mine.nextRefresh = 0;
    tick();
    const results = await Promise.all([
      read(mine, "/history", { minutes: MINUTES }),
      ...BREAKDOWNS.map((by) => read(mine, "/breakdown", { by, limit: 10 })),
    ]);
    if (run !== mine) return;
    const [history, ...lists] = results;
    if (history.body) drawChart((mine.history = history.body.minutes ?? []));
    else if (!mine.history) drawChart(null, "Not available yet");
    lists.forEach((list, n) => {
      const by = BREAKDOWNS[n];
      if (list.body) {
        mine.loaded.add(by);
        drawList(by, list.body.items ?? []);
      } else if (!mine.loaded.has(by)) {
        note(ui.lists[by], "Not available yet");
      }
    });
    const problems = results.map((result) => result.problem).filter(Boolean);
    const problem = problems.find((p) => p.kind === "fatal") ?? problems[0] ?? null;
    if (problem?.kind === "fatal") return fail(mine, problem);
    report(mine, "refresh", problem);
    schedule(mine, problem, Math.min(...results.map((result) => result.remaining ?? Infinity)));
  }

  // At most half the hourly budget: with the free plan's 100 requests, 4 reads every
  // 4 min 48 s. The bucket refills continuously, so the other half is left for the
  // stream's openings and the website's other clients.
  function schedule(mine, problem, remaining) {
    const perRequest = 3_600_000 / (mine.limit || 100); // the bucket gains one this often
    mine.intervalMs = Math.max(MIN_REFRESH_MS, CALLS_PER_REFRESH * perRequest * 2);
    let delay = mine.intervalMs;
    if (problem?.rate) {
      // Retry-After says when one request gets through; a refresh needs four.
      delay = problem.retryMs + (CALLS_PER_REFRESH - 1) * perRequest;
    } else if (problem) {
      delay = problem.retryMs ?? OUTAGE_RETRY_MS;
    } else if (remaining < CALLS_PER_REFRESH) {
      delay = Math.max(delay, (CALLS_PER_REFRESH - remaining) * perRequest);
    }
    mine.nextRefresh = Date.now() + delay;
    clearTimeout(mine.refreshTimer);
    mine.refreshTimer = setTimeout(() => {
      // A hidden tab spends nothing: the refresh waits until the tab is seen again.
      if (document.hidden) mine.due = true;
      else refresh(mine);
      tick();
    }, delay);
    tick();
  }

  document.addEventListener("visibilitychange", () => {
    if (run?.due && !document.hidden) refresh(run);
  });

  // Once a second: the countdown to the next refresh.
  function tick() {
    if (!run) return;
    let text = "Refreshing…";
    if (run.due) text = "Refresh paused while this tab is hidden.";
    else if (run.nextRefresh) {
      const left = Math.max(0, run.nextRefresh - Date.now());
      text = `Next refresh at ${clock(run.nextRefresh, true)} (in ${duration(left)}).`;
    }
    if (run.limit && run.intervalMs) {
      text += ` Chart and lists refresh every ${duration(run.intervalMs)}, within half of this plan’s ${numbers.format(run.limit)} requests an hour; the count is live.`;
    }
    ui.refresh.textContent = text;
  }

  // A list's one line when it has no rows: loading, nobody, or not read.
  function note(list, text) {
    const line = document.createElement("li");
    line.className = "empty";
    line.textContent = text;
    list.replaceChildren(line);
  }

  function drawList(by, items) {
    const list = ui.lists[by];
    if (!items.length) return note(list, "Nobody right now");
    const top = Math.max(1, items[0].visitors);
    list.replaceChildren(
      ...items.map((item) => {
        const [row, fill, name, count] = ["li", "span", "span", "span"].map((tag) =>
          document.createElement(tag),
        );
        fill.className = "fill";
        // CSSOM, which the page's CSP allows (a style="" attribute it would not).
        fill.style.width = `${((100 * item.visitors) / top).toFixed(1)}%`;
        name.className = "name";
        name.textContent = label(by, item.value);
        name.title = item.value;
        count.className = "num";
        count.textContent = numbers.format(item.visitors);
        row.append(fill, name, count);
        return row;
      }),
    );
  }

  function label(by, value) {
    if (by === "source" && value === "direct") return "Direct / none";
    if (by === "country" && value === "unknown") return "Unknown";
    if (by === "country") {
      try {
        return regions?.of(value) ?? value;
      } catch {
        return value;
      }
    }
    return value;
  }

  // --- The chart --------------------------------------------------------------------

  function svg(name, attributes, parent) {
    // The namespace from the page's own <svg>: no URL to spell out here.
    const node = document.createElementNS(ui.chart.namespaceURI, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    parent?.append(node);
    return node;
  }

  function drawChart(minutes, text) {
    const chart = ui.chart;
    const width = Math.max(240, Math.floor(ui.chartBox.clientWidth));
    const height = 180;
    const pad = { top: 10, right: 4, bottom: 24, left: 34 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.setAttribute("width", width);
    const title = svg("title", { id: "chart-title" });
    const desc = svg("desc", { id: "chart-desc" });
    title.textContent = `Visitors per minute, last ${MINUTES} minutes`;
    chart.replaceChildren(title, desc);
    ui.chartTotal.textContent = `Last ${MINUTES} minutes`;
    if (!minutes?.length) {
      desc.textContent = text || "No data.";
      const middle = { x: width / 2, y: height / 2, "text-anchor": "middle", class: "note" };
      svg("text", middle, chart).textContent = text || "No data";
      return;
    }
    const peak = minutes.reduce((top, m) => (m.visitors > top.visitors ? m : top));
    const max = niceCeiling(peak.visitors);
    const y = (value) => pad.top + plotH - (value / max) * plotH;

    // The value axis: 0, half way and the top, each a grid line.
    for (const value of [0, max / 2, max]) {
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value), class: value ? "grid" : "axis" }, chart);
      const tick = svg("text", { x: pad.left - 6, y: y(value), class: "tick value" }, chart);
      tick.textContent = numbers.format(value);
    }

    const slot = plotW / minutes.length;
    const barW = Math.max(1, Math.min(slot - 2, slot * 0.72));
    let pageviews = 0;
    minutes.forEach((minute, n) => {
      pageviews += minute.pageviews;
      const last = n === minutes.length - 1;
      // A minute without visitors still shows, as a stub on the axis.
      const barH = Math.max(2, (plotH * minute.visitors) / max);
      const bar = svg(
        "rect",
        {
          x: (pad.left + n * slot + (slot - barW) / 2).toFixed(1),
          y: (pad.top + plotH - barH).toFixed(1),
          width: barW.toFixed(1),
          height: barH.toFixed(1),
          rx: Math.min(2, barW / 4).toFixed(1),
          class: `bar${last ? " now" : ""}${minute.visitors ? "" : " zero"}`,
          "data-visitors": minute.visitors,
          "data-start": minute.start,
        },
        chart,
      );
      svg("title", {}, bar).textContent =
        `${clock(Date.parse(minute.start))}${last ? " (this minute so far)" : ""}: ` +
        `${plural(minute.visitors, "visitor")}, ${plural(minute.pageviews, "pageview")}`;
    });

    // The time axis: the first minute, the middle one, and now.
    const middle = Math.floor(minutes.length / 2);
    const marks = [
      [pad.left, "start", clock(Date.parse(minutes[0].start))],
      [pad.left + (middle + 0.5) * slot, "middle", clock(Date.parse(minutes[middle].start))],
      [width - pad.right, "end", "now"],
    ];
    for (const [x, anchor, text] of minutes.length > 2 ? marks : marks.slice(2)) {
      svg("text", { x, y: height - 6, "text-anchor": anchor, class: "tick" }, chart).textContent = text;
    }

    const now = minutes[minutes.length - 1];
    desc.textContent =
      `From ${clock(Date.parse(minutes[0].start))} to now. Peak: ${plural(peak.visitors, "visitor")} ` +
      `at ${clock(Date.parse(peak.start))}. This minute so far: ${plural(now.visitors, "visitor")}, ` +
      `${plural(now.pageviews, "pageview")}.`;
    ui.chartTotal.textContent = `Last ${MINUTES} minutes · ${plural(pageviews, "pageview")}`;
  }

  // 2, 4, 6, 8, 10, 20, 40...: a round top whose half is a whole number too.
  function niceCeiling(value) {
    if (value <= 2) return 2;
    const step = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 4, 6, 8, 10].map((m) => m * step).find((n) => n >= value);
  }

  let redraw = 0;
  addEventListener("resize", () => {
    cancelAnimationFrame(redraw);
    redraw = requestAnimationFrame(() => run?.history && drawChart(run.history));
  });

  // --- Formatting -------------------------------------------------------------------

  function clock(ms, seconds) {
    const options = { hour: "numeric", minute: "2-digit", ...(seconds && { second: "2-digit" }) };
    return new Date(ms).toLocaleTimeString([], options);
  }

  function duration(ms) {
    const s = Math.ceil(ms / 1000);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ""}`;
    return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
  }

  const plural = (n, word) => `${numbers.format(n)} ${word}${n === 1 ? "" : "s"}`;

  // --- Start ------------------------------------------------------------------------

  const saved = load();
  if (saved) start(saved);
  else showForm("");
})();
