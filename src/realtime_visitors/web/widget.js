// realtime-visitors live counter, served as is. README: "Show a live counter on your
// site" documents its data-* attributes and its classes (rtv-widget, -count, -stale).
(() => {
  // Never throw into the page: every entry point (run, events, timers) is guarded.
  const guard = (run) => (...args) => {
    try {
      return run(...args);
    } catch {}
  };
  guard(() => {
    // A loader that injects the tag may leave no currentScript.
    const script =
      document.currentScript ||
      [...document.querySelectorAll('script[src*="widget.js"][data-website-id]')].find(
        (tag) => !tag.rtvWidget,
      );
    if (!script) return;
    script.rtvWidget = true; // an expando, not a global
    const data = script.dataset;
    const warn = (why) => console.warn("realtime-visitors widget: " + why);
    if (!data.websiteId || !data.key) return warn("data-website-id and data-key are required");

    const path = !data.path || data.path == "auto" ? location.pathname : data.path;
    // The publishable key is all that is sent, in the query; never cookies.
    const query = new URLSearchParams({
      websiteId: data.websiteId,
      key: data.key,
      ...(path != "none" && { path }),
    });
    const api = new URL(script.src).origin + "/api/v1/realtime";
    const interval = (+data.interval || 15) * 1000;
    const [one, many = one] = (
      data.text || "{count} person viewing this page|{count} people viewing this page"
    ).split("|");

    const widget = document.createElement("span");
    const style = widget.style;
    const stale = (on) => widget.classList.toggle("rtv-widget-stale", on);
    widget.className = "rtv-widget";
    widget.setAttribute("aria-live", "polite");
    widget.setAttribute("aria-atomic", "true"); // the sentence, not just the number
    // Hidden, not absent: it holds its place until the first count.
    style.visibility = "hidden";
    style.display = "inline-block";

    const show = (count) => { // as text, never HTML
      const number = document.createElement("span");
      number.className = "rtv-widget-count";
      number.textContent = count.toLocaleString();
      const [first, ...rest] = (count == 1 ? one : many).split("{count}");
      widget.replaceChildren(first, ...rest.flatMap((text) => [number.cloneNode(true), text]));
    };
    const got = (json) => {
      show(JSON.parse(json).currentVisitors);
      stale(false);
      style.visibility = "";
    };

    // The browser reconnects by itself after a network error (a server restart).
    const listen = () => {
      const source = new EventSource(api + "/stream?" + query);
      source.addEventListener("visitors", guard((event) => got(event.data)));
      source.addEventListener("unavailable", guard(() => stale(true)));
      // Closed for good: an HTTP error. Polling learns which.
      source.onerror = guard(() => source.readyState == EventSource.CLOSED && poll());
    };

    // Without EventSource, or after the stream failed; a read that works tries it again.
    const poll = async () => {
      let wait = interval;
      let next = poll;
      try {
        const response = await fetch(api + "?" + query, { credentials: "omit" });
        const status = response.status;
        if (response.ok) {
          got(await response.text());
          if (window.EventSource) next = listen;
        } else if (status < 500 && status != 429) {
          // 400, 401, 403, 404: the key will not do. Show nothing, never retry.
          style.visibility = "hidden";
          return warn(status + " " + (await response.text()));
        } else {
          stale(true);
          wait = Math.max(wait, response.headers.get("Retry-After") * 1000 || 0);
        }
      } catch {
        stale(true); // offline, or the service is down
      }
      setTimeout(guard(next), wait);
    };

    // The wider form's width is kept from the start: no layout shift.
    const place = guard(() => {
      const target = data.target ? document.querySelector(data.target) : script;
      if (!target) return warn("no element matches data-target " + data.target);
      data.target ? target.append(widget) : script.after(widget);
      let width = 0;
      for (const count of [1, 88]) {
        show(count);
        width = Math.max(width, widget.getBoundingClientRect().width);
      }
      style.minWidth = width + "px";
      window.EventSource ? listen() : poll();
    });

    // A data-target further down the page may not be parsed yet.
    data.target && document.readyState == "loading"
      ? addEventListener("DOMContentLoaded", place)
      : place();
  })();
})();
