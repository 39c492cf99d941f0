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
    var target = event.target.closest("[data-copy], [data-dismiss], [data-close-dialog]");
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
      target.closest(".alert").remove();
    } else {
      closeDialog();
    }
  });

  // Success messages fade out by themselves; errors stay until dismissed.
  function autoDismiss(root) {
    (root || document).querySelectorAll(".alert-success, .alert-info").forEach(function (el) {
      setTimeout(function () { el.remove(); }, 6000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { autoDismiss(); });

  document.addEventListener("htmx:afterSwap", function (event) {
    var d = dialog();
    if (event.detail.target === d && d.innerHTML.trim() && !d.open) {
      d.showModal();
      var first = d.querySelector("input:not([type=hidden]), textarea, select") || d.querySelector("button");
      if (first) first.focus();
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) { autoDismiss(event.detail.target); });

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
