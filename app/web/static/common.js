// Helpers the dashboard pages share. Plain modules: no framework, no build step.

/** The session's CSRF token, which every state-changing request sends back. */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/**
 * Show the <time> elements under `root` in the browser's time zone. Relative ones ("5m ago")
 * keep their text and get the local time as a tooltip.
 */
export function localizeTimes(root) {
  for (const element of root.querySelectorAll("time[datetime]")) {
    const moment = new Date(element.dateTime);
    if (Number.isNaN(moment.getTime())) continue;
    const local = timeFormat.format(moment);
    if (element.classList.contains("ago")) {
      element.title = local;
    } else {
      element.title = element.dateTime;
      element.textContent = local;
    }
  }
}

/**
 * Fetch a fragment the server rendered and return its element `id`, adopted into this page.
 * The server escaped every value it put in the markup; DOMParser runs no scripts, and the
 * page's Content-Security-Policy allows no inline handlers either.
 */
export async function fetchFragment(url, id) {
  const response = await fetch(url, {
    headers: { Accept: "text/html" },
    cache: "no-store",
    credentials: "same-origin",
  });
  if (response.status === 401) {
    window.location.assign("/login");
    return null;
  }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
  const element = parsed.getElementById(id);
  return element ? document.adoptNode(element) : null;
}

/** Replace the element with the same id as `fresh`, keeping times localized. */
export function swapIn(fresh) {
  const current = document.getElementById(fresh.id);
  if (!current) return;
  localizeTimes(fresh);
  current.replaceWith(fresh);
}

/**
 * Run `task` every `ms` milliseconds while the page is visible, until it returns false.
 * A failed run (the network hiccups) is retried at the next tick.
 */
export function every(ms, task) {
  let timer = null;
  let stopped = false;
  const schedule = () => {
    if (!stopped && timer === null && !document.hidden) timer = setTimeout(run, ms);
  };
  const run = async () => {
    timer = null;
    try {
      if ((await task()) === false) stopped = true;
    } catch (error) {
      console.warn("refresh failed; retrying", error);
    }
    schedule();
  };
  document.addEventListener("visibilitychange", schedule);
  schedule();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
    now() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      run();
    },
  };
}

export function formatSize(bytes) {
  const units = ["B", "kB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
