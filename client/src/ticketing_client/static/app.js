// The live parts; every page works without them.
(function () {
  "use strict";

  function clock(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // A countdown to data-expires; at zero an order page hides its payment form and says so.
  function countdown(el) {
    var expires = Date.parse(el.getAttribute("data-expires"));
    var out = el.querySelector("[data-clock]");
    if (isNaN(expires) || !out) return;
    function tick() {
      var left = Math.max(0, Math.ceil((expires - Date.now()) / 1000));
      out.textContent = clock(left);
      if (left > 0) return;
      clearInterval(timer);
      var page = el.closest("article");
      var message = page && page.querySelector("[data-expired-message]");
      if (message) {
        el.hidden = true;
        message.hidden = false;
        page.querySelectorAll("[data-payable]").forEach(function (p) { p.hidden = true; });
        var badge = page.querySelector("[data-status-badge]");
        if (badge) { badge.textContent = "Expired"; badge.className = "badge badge-cancelled"; }
      } else {
        el.textContent = "Expired";
      }
    }
    var timer = setInterval(tick, 1000);
    tick();
  }

  // After paying: follow the order until orders completes (or cancels) it.
  function follow(el) {
    var url = el.getAttribute("data-follow");
    var message = el.querySelector("[data-follow-message]");
    var badge = document.querySelector("[data-status-badge]");
    var started = Date.now();
    function done(kind, html, label, badgeKind) {
      el.className = "alert alert-" + kind;
      message.innerHTML = html;
      if (badge) { badge.textContent = label; badge.className = "badge badge-" + badgeKind; }
    }
    function poll() {
      fetch(url, { headers: { accept: "application/json" }, cache: "no-store" })
        .then(function (res) { return res.ok ? res.json() : null; })
        .then(function (body) {
          if (body && body.status === "complete") {
            done("success", "<strong>Order complete.</strong> Your payment went through and the ticket is yours.", "Complete", "complete");
          } else if (body && body.status === "cancelled") {
            done("info", "<strong>This order was cancelled or expired.</strong> Your card was not charged.", "Cancelled", "cancelled");
          } else if (Date.now() - started > 120000) {
            message.textContent = "Still confirming your order. Reload this page in a minute.";
          } else {
            setTimeout(poll, 1000);
          }
        })
        .catch(function () { setTimeout(poll, 2000); });
    }
    poll();
  }

  // The "restarting" page of a GET tries again by itself (it says so).
  function retry(el) {
    if (document.body.getAttribute("data-method") !== "GET") return;
    el.hidden = false;
    setTimeout(function () { location.reload(); }, 1000 * Number(el.getAttribute("data-retry")));
  }

  document.querySelectorAll("[data-countdown]").forEach(countdown);
  document.querySelectorAll("[data-retry]").forEach(retry);
  document.querySelectorAll("[data-follow]").forEach(follow);
})();
