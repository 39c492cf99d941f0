// The little glue htmx does not do: dialogs, copy buttons, dismissible alerts, and a
// readable message when a request fails outright. No inline scripts (CSP), no eval.
(function () {
  "use strict";

  function dialog() { return document.getElementById("dialog"); }

  // The markup comes from the page: <template id="alert-template"> renders _alert.html.
  function showAlert(text, level) {
    var alerts = document.getElementById("alerts");
    var template = document.getElementById("alert-template");
    if (!alerts || !template) return;
    level = level || "error";
    var box = template.content.firstElementChild.cloneNode(true);
    box.className = "alert alert-" + level;
    box.setAttribute("role", level === "error" ? "alert" : "status");
    box.querySelector("p").textContent = text;
    alerts.append(box);
  }

  function closeDialog() {
    var d = dialog();
    if (d && d.open) d.close();
  }

  document.addEventListener("click", function (event) {
    var busy = event.target.closest('[aria-disabled="true"]');
    if (busy) { event.preventDefault(); return; }
    var target = event.target.closest("[data-copy], [data-dismiss], [data-close-dialog], [data-clear-filters]");
    if (!target) return;
    if (target.hasAttribute("data-copy")) {
      var text = target.getAttribute("data-copy");
      var done = function () {
        var label = target.textContent;
        target.textContent = "Copied";
        setTimeout(function () { target.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { showAlert("Copy failed: select the text and copy it."); });
      } else {
        var area = document.createElement("textarea");
        area.value = text; document.body.append(area); area.select();
        try { document.execCommand("copy"); done(); } finally { area.remove(); }
      }
    } else if (target.hasAttribute("data-dismiss")) {
      var alert = target.closest(".alert");
      var next = alert.nextElementSibling || alert.previousElementSibling;
      alert.remove();
      if (next) focusOn(next); else focusOn(document.querySelector("#main h1") || document.getElementById("main"));
    } else if (target.hasAttribute("data-clear-filters")) {
      // The link fetches the unfiltered table; the form's fields must say so too.
      var filters = document.getElementById("model-filters");
      if (filters) {
        Array.prototype.forEach.call(filters.elements, function (field) {
          if (field.tagName === "SELECT") field.selectedIndex = 0;
          else if (field.type !== "hidden" && field.type !== "submit") field.value = "";
        });
        var search = filters.querySelector("input[type=search]");
        if (search) search.focus();
      }
    } else if (dialog() && dialog().contains(target)) {
      // In the dialog, Cancel and × close it (without JavaScript they are links back).
      event.preventDefault();
      closeDialog();
    }
  });

  // ---------------------------------------------------------------- focus and announcements
  // Messages stay until dismissed (they sit in the page's flow and cover nothing).
  // Progress goes through one polite live region (#live in base.html).
  var lastAnnounced = "";
  function announce(text) {
    var live = document.getElementById("live");
    text = (text || "").replace(/\s+/g, " ").trim();
    if (!live || !text || text === lastAnnounced) return;
    lastAnnounced = text;
    live.textContent = text;
  }

  var FOCUSABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]";
  // What identifies a control across a swap: its data-focus-key, id, or label and text.
  function keyOf(el) {
    if (!el || el === document.body || !el.tagName) return null;
    if (el.dataset && el.dataset.focusKey) return "key:" + el.dataset.focusKey;
    if (el.id) return "#" + el.id;
    return el.tagName + ":" + (el.getAttribute("aria-label") || el.textContent || el.name || "").replace(/\s+/g, " ").trim();
  }
  function findByKey(root, key) {
    if (!key) return null;
    var all = [root].concat(Array.prototype.slice.call(root.querySelectorAll(FOCUSABLE + ", [data-focus-key]")));
    return all.find(function (el) { return keyOf(el) === key; }) || null;
  }
  function focusLost() {
    var a = document.activeElement;
    return !a || a === document.body || !a.isConnected;
  }
  function focusOn(el) {
    if (!el) return false;
    if (!el.matches(FOCUSABLE)) el.setAttribute("tabindex", "-1");
    el.focus();
    return document.activeElement === el;
  }
  // The control that sent a change (controlKey), or the one focused when an answer
  // came in (swapKey: a poll, a boosted link): after the swap, focus goes to its twin.
  var controlKey = null, swapKey = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    swapKey = active && active !== document.body && event.detail.target.contains(active) ? keyOf(active) : null;
  });
  // After a swap, if focus fell to <body>: the first invalid field, an autofocus field,
  // the same control again (Archive becomes Unarchive), or else the new content itself.
  document.addEventListener("htmx:afterSettle", function (event) {
    var root = event.target;
    if (!root || !root.isConnected || root.id === "alerts" || root.id === "dialog") return;
    if (root.id === "model-table" || root.id === "audit-table") announce(summaryOf(root));
    if (root.id === "bulk-job") { var title = root.querySelector("h2"); if (title) announce(title.textContent); }
    if (!focusLost()) { controlKey = null; return; }
    focusOn(root.querySelector('[aria-invalid="true"]') || root.querySelector("[autofocus]") ||
            findByKey(root, controlKey) || findByKey(root, swapKey) ||
            root.querySelector("[data-focus-fallback]") || root.querySelector(FOCUSABLE) || root);
    controlKey = null;
  });
  function summaryOf(root) {
    var count = root.querySelector(".summary, .empty h2");
    return count ? count.textContent : "Loaded.";
  }

  // Busy: the control that sent a change is disabled, says so (aria-busy) and spins (CSS).
  function busyControl(event) {
    var elt = event.detail.elt;
    var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (elt.tagName === "FORM") return (trigger && trigger.submitter) || elt.querySelector("button[type=submit], button:not([type])");
    return elt.matches("button, a") ? elt : null;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var config = event.detail.requestConfig || {};
    if (event.detail.elt.hasAttribute("hx-indicator")) announce("Loading…");
    if ((config.verb || "get") === "get") return;
    var control = busyControl(event);
    if (!control) return;
    controlKey = keyOf(control);
    event.detail.elt._busyControl = control;
    control.setAttribute("aria-busy", "true");
    if (control.tagName === "BUTTON") control.disabled = true; else control.setAttribute("aria-disabled", "true");
    announce((control.textContent || "").trim() + ": working…");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var control = event.detail.elt._busyControl;
    if (!control) return;
    event.detail.elt._busyControl = null;
    control.removeAttribute("aria-busy");
    control.removeAttribute("aria-disabled");
    if (control.tagName === "BUTTON") control.disabled = false;
    // Nothing swapped (an alert came instead): focus goes back to the control.
    if (control.isConnected && focusLost()) control.focus();
  });
  // An alert that arrives while focus is lost (the row it was in is gone) takes focus.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var alert = event.detail.target && event.detail.target.querySelector(".alert:last-child");
    setTimeout(function () { if (alert && alert.isConnected && focusLost()) focusOn(alert); }, 50);
  });

  // Opened once settled: htmx wires the new buttons up then (Enter before that would
  // post the form without htmx).
  document.addEventListener("htmx:afterSettle", function (event) {
    var d = dialog();
    if (event.detail.target === d && d.innerHTML.trim() && !d.open) {
      d.showModal();
      // The first field, or the dialog's main button: never "× Close", which Enter would press.
      var first = d.querySelector("[autofocus], input:not([type=hidden]), textarea, select") ||
                  d.querySelector("button[type=submit], .buttons a, .buttons button");
      if (first) first.focus();
    }
  });

  // A closed dialog is emptied, except while a bulk job runs in it: its poller stays (the
  // dialog is only hidden) so that the list still updates when the job finishes.
  document.addEventListener("close", function (event) {
    var d = dialog();
    if (event.target !== d) return;
    if (d.querySelector("#bulk-job[data-running]")) {
      showAlert("The bulk action goes on in the background; the list updates when it finishes.", "info");
      return;
    }
    d.innerHTML = "";
    // The control that opened the dialog may have gone with a swap: focus the list's count.
    setTimeout(function () {
      if (focusLost()) focusOn(document.getElementById("model-count") || document.querySelector("#main h1"));
    }, 0);
  }, true);

  // Bulk selection: the "select all on this page" box, the count, and the button that
  // needs at least one ticked row.
  function updateSelection() {
    var boxes = document.querySelectorAll('input[name="ids"][form="bulk-form"]');
    var ticked = Array.prototype.filter.call(boxes, function (box) { return box.checked; }).length;
    document.querySelectorAll("[data-selected-count]").forEach(function (el) { el.textContent = ticked; });
    document.querySelectorAll("[data-needs-selection]").forEach(function (el) { el.disabled = ticked === 0; });
    var all = document.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-select-all]")) {
      document.querySelectorAll('input[name="ids"][form="bulk-form"]').forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
    if (event.target.matches('[data-select-all], input[name="ids"]')) updateSelection();
  });
  document.addEventListener("htmx:afterSettle", updateSelection);
  document.addEventListener("DOMContentLoaded", updateSelection);

  // Server events (HX-Trigger).
  document.body.addEventListener("closeDialog", closeDialog);
  document.body.addEventListener("modelDeleted", function (event) {
    closeDialog();
    var id = event.detail && event.detail.id;
    document.querySelectorAll("tr[data-model-id]").forEach(function (row) {
      if (row.dataset.modelId === id) row.remove();
    });
    // The table reloads itself (its count changes): focus goes to the count.
    controlKey = "#model-count";
  });

  // htmx 2 swaps nothing on 4xx/5xx or network errors: say what happened.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    var text = status === 403 ? "Your role does not allow this." :
               status === 404 ? "That page or model no longer exists." :
               status === 429 ? "Too many requests: wait a moment and try again." :
               "Something went wrong (HTTP " + status + "). Try again.";
    showAlert(text);
  });
  document.addEventListener("htmx:sendError", function () {
    showAlert("The dashboard could not be reached. Check your connection and try again.");
  });
})();
