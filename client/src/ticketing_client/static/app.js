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

  // This page's CSRF token: what a fetch to the client sends as X-CSRF-Token.
  function csrfHeaders(headers) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) headers["x-csrf-token"] = meta.getAttribute("content");
    return headers;
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
      fetch(url, { headers: csrfHeaders({ accept: "application/json" }), cache: "no-store" })
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

  // Paying with Stripe Elements (when the site has a publishable key): the card goes to Stripe
  // from its own frame, the token Stripe makes is posted with the form, as a test card's is.
  function stripeCard(form) {
    var errors = form.querySelector("[data-card-errors]");
    var button = form.querySelector("[data-pay-button]");
    var tokenInput = form.querySelector("[data-card-token]");
    function fail(message) {
      errors.textContent = message;
      button.disabled = false;
    }
    if (typeof window.Stripe !== "function") {
      button.disabled = true;
      errors.textContent = "The card form could not load. Check your connection and reload the page.";
      return;
    }
    var stripe, card;
    try {
      stripe = window.Stripe(form.getAttribute("data-stripe-key"));
      card = stripe.elements().create("card");
      card.mount(form.querySelector("[data-card-element]"));
    } catch (e) {
      button.disabled = true;
      errors.textContent = "The card form could not load. Please reload the page.";
      return;
    }
    card.on("change", function (event) {
      errors.textContent = event.error ? event.error.message : "";
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (button.disabled) return;
      button.disabled = true;
      errors.textContent = "";
      stripe.createToken(card).then(function (result) {
        if (result.error) {
          fail(result.error.message || "Your card could not be used.");
        } else {
          tokenInput.value = result.token.id;
          form.submit();  // the page's own form, with its CSRF token, to the same payment path
        }
      }, function () {
        fail("Could not reach Stripe. Check your connection and try again.");
      });
    });
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
  document.querySelectorAll("form[data-stripe-key]").forEach(stripeCard);
})();
