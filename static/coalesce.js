// Work that many changes in a row ask for, done once: a moment after the first of them.

/**
 * A function that runs `fn` `ms` after it is first called; calls until then join that run.
 * Its cancel() drops a run not started (a new connection starts over).
 */
export function coalesced(fn, ms) {
  let timer = null;
  const soon = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  soon.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return soon;
}
