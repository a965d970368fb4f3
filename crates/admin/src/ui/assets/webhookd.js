// webhookd web UI: small progressive enhancements. Every page works without
// this script; it only asks before destructive actions, keeps the template
// preview live and applies presets in place. It never builds HTML from data:
// text goes in with textContent.
(function () {
  "use strict";

  // Times are shown in the browser's zone until the user picks one on the
  // settings page: the server reads it from this cookie.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var stored = "webhookd_tz=" + encodeURIComponent(zone || "");
    if (zone && document.cookie.split("; ").indexOf(stored) < 0) {
      document.cookie = stored + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (ignored) {
    // No Intl: UTC, as without the script.
  }

  // Forms marked data-confirm ask first. The server asks itself when the
  // `confirmed` field is missing, so without the script there is a
  // confirmation page instead.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (!question) {
      return;
    }
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var confirmed = document.createElement("input");
    confirmed.type = "hidden";
    confirmed.name = "confirmed";
    confirmed.value = "yes";
    form.appendChild(confirmed);
  });

  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // The logs page's newest attempts grow as attempts are recorded, from
  // the server-sent events of data-live-url. The server sends each text in
  // the viewer's language; the cells are labelled from the table's headers
  // and the link from data-live-view, so nothing here is in one language.
  var live = document.querySelector("[data-live-url]");
  if (live && window.EventSource) {
    var rows = live.querySelector("tbody");
    var empty = live.querySelector("[data-live-empty]");
    var labels = Array.prototype.map.call(live.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    var source = new EventSource(live.getAttribute("data-live-url"));
    source.addEventListener("open", function () {
      live.setAttribute("data-live-open", "");
    });
    source.addEventListener("attempt", function (message) {
      var attempt = JSON.parse(message.data);
      var row = document.createElement("tr");
      row.setAttribute("data-live-row", "");
      function cell(build) {
        var td = document.createElement("td");
        td.setAttribute("data-label", labels[row.children.length] || "");
        build(td);
        row.appendChild(td);
        return td;
      }
      cell(function (td) {
        var time = document.createElement("time");
        time.setAttribute("datetime", attempt.created_at);
        time.setAttribute("title", attempt.time_title);
        time.textContent = attempt.time_text;
        td.appendChild(time);
      });
      cell(function (td) {
        var code = document.createElement("code");
        code.textContent = attempt.event;
        td.appendChild(code);
      });
      cell(function (td) { td.textContent = String(attempt.attempt); });
      cell(function (td) {
        var badge = document.createElement("span");
        badge.className = attempt.is_success ? "badge ok" : "badge fail";
        badge.textContent = attempt.outcome_text;
        td.appendChild(badge);
      });
      cell(function (td) { td.textContent = attempt.took_text; });
      cell(function (td) {
        td.className = "error-cell";
        td.textContent = attempt.error_text || "";
      });
      cell(function (td) {
        var link = document.createElement("a");
        link.href = attempt.url;
        link.textContent = live.getAttribute("data-live-view");
        td.appendChild(link);
      });
      rows.insertBefore(row, rows.firstChild);
      if (empty) {
        empty.hidden = true;
      }
    });
  }

  // The webhook form's auth fields: only the selected type's are shown
  // (without the script all are, and the server reads the selected type's).
  var authType = document.getElementById("auth_type");
  if (authType) {
    var showAuthKind = function () {
      document.querySelectorAll("[data-auth-kind]").forEach(function (group) {
        group.hidden = group.getAttribute("data-auth-kind") !== authType.value;
      });
    };
    authType.addEventListener("change", showAuthKind);
    showAuthKind();
  }

  var form = document.querySelector("form[data-preview-url]");
  if (!form) {
    return;
  }
  var template = form.querySelector("#template");
  var previewEvent = form.querySelector("#preview_event");
  var preset = form.querySelector("#preset");
  var output = document.getElementById("preview-output");
  var problem = document.getElementById("preview-error");
  var csrf = form.querySelector("input[name=_csrf]");
  var timer = null;
  var latest = 0;

  function showPreview(result) {
    if (result.ok) {
      output.querySelector("code").textContent = result.body;
      output.hidden = false;
      problem.hidden = true;
    } else {
      // Words in the page's language, then the parser's own detail as code.
      problem.textContent = result.error;
      if (result.detail) {
        var detail = document.createElement("code");
        detail.textContent = result.detail;
        problem.appendChild(document.createTextNode(" "));
        problem.appendChild(detail);
      }
      problem.hidden = false;
      output.hidden = true;
    }
  }

  function refresh() {
    var body = new URLSearchParams();
    body.set("_csrf", csrf.value);
    body.set("template", template.value);
    body.set("preview_event", previewEvent.value);
    var request = ++latest;
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST",
      body: body,
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("preview failed: HTTP " + response.status);
      }
      return response.json();
    }).then(function (result) {
      // Answers can overtake each other; only the newest request counts.
      if (request === latest) {
        showPreview(result);
      }
    }).catch(function () {
      // The "Update preview" button still works by posting the form.
    });
  }

  function refreshSoon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 250);
  }

  // The "Custom" option (a template that is no preset) has no text to apply.
  function presetTemplates() {
    return Array.prototype.filter.call(preset.options, function (option) {
      return option.hasAttribute("data-template");
    }).map(function (option) {
      return option.getAttribute("data-template");
    });
  }

  function applyPreset() {
    var option = preset.options[preset.selectedIndex];
    if (!option.hasAttribute("data-template")) {
      return;
    }
    template.value = option.getAttribute("data-template");
    refresh();
  }

  template.addEventListener("input", refreshSoon);
  previewEvent.addEventListener("change", refresh);
  // Picking a preset replaces the template at once only when the template is
  // empty or an unchanged preset; edited text is replaced by the button only.
  preset.addEventListener("change", function () {
    if (presetTemplates().indexOf(template.value) !== -1) {
      applyPreset();
    }
  });
  form.querySelector("[data-apply-preset]").addEventListener("click", function (event) {
    event.preventDefault();
    applyPreset();
  });
  form.querySelector("[data-preview-button]").addEventListener("click", function (event) {
    event.preventDefault();
    refresh();
  });
})();
