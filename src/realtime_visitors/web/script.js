// realtime-visitors tracker, served as is. README: "Add the tracker to your site".
(() => {
  let send = () => {};
  window.rtv = () => send(true); // the only global
  try {
    const data = document.currentScript.dataset;
    const api = new URL(data.api || document.currentScript.src).origin + "/api/v1/pageview";
    if (
      !data.websiteId ||
      // file: pages have no hostname
      (!("includeLocalhost" in data) && /^(localhost|127(\.\d+){3}|\[::1]|)$/.test(location.hostname)) ||
      (!("includeAutomation" in data) &&
        (navigator.webdriver ||
          document.documentElement.hasAttribute("webdriver") ||
          window._phantom ||
          window.callPhantom ||
          window.__nightmare ||
          window.Cypress ||
          window.__selenium_unwrapped))
    )
      return;
    let last; // the page last sent, less its #hash: anchor clicks fire popstate

    send = (again) => {
      try {
        const url = location.href;
        const page = url.split("#")[0];
        if (!again && page == last) return;
        try {
          if (localStorage.rtv_ignore == "true") return;
        } catch {} // in sandboxed frames
        const body = JSON.stringify({
          websiteId: data.websiteId,
          url,
          // The server keeps a visit's first source: send the landing page's only.
          referrer: last ? undefined : document.referrer,
        });
        last = page;
        // A string goes as text/plain: no CORS preflight.
        navigator.sendBeacon?.(api, body) ||
          fetch(api, { method: "POST", body, keepalive: true }).catch(() => {});
      } catch {}
    };

    for (const name of ["pushState", "replaceState"]) {
      const original = history[name];
      history[name] = function () {
        original.apply(this, arguments);
        send();
      };
    }
    addEventListener("popstate", () => send());
    // Restored from the back-forward cache: the visitor came back.
    addEventListener("pageshow", (event) => event.persisted && send(true));
    send();
  } catch {}
})();
