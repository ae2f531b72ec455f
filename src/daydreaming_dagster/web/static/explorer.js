// DayDreaming explorer: keyboard shortcuts and small conveniences. Served from /static because
// the Content-Security-Policy forbids inline scripts; the pages work without it.
(function () {
  "use strict";

  function typing(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link && link.href) window.location.assign(link.href);
  }

  // Digits type a score: a second digit within a second extends it ("1" then "0" gives 10)
  // as long as the result stays on the scale. "." (or ",") then "5" adds a half point: "7", ".",
  // "5" gives 7.5; a "." alone right after a digit already shows 7.5 when nothing follows.
  var pending = "";
  var pendingAt = 0;
  function typeKey(key) {
    var score = document.getElementById("score");
    if (!score) return false;
    var max = parseFloat(score.dataset.max || "10");
    var now = Date.now();
    var fresh = !(pending && now - pendingAt < 1000);
    var half = key === "." || key === ",";
    var candidate;
    if (half) {
      if (fresh || pending.indexOf(".") >= 0) return true;
      candidate = pending + ".";
    } else if (!fresh && /\.$/.test(pending) && key === "5") {
      candidate = pending + "5";
    } else if (!fresh && pending.indexOf(".") < 0) {
      candidate = pending + key;
    } else {
      candidate = key;
    }
    var value = /\.$/.test(candidate) ? parseFloat(candidate) + 0.5 : parseFloat(candidate);
    if (value > max) {
      if (half) return true;
      candidate = key;
      value = parseFloat(key);
    }
    pending = candidate;
    pendingAt = now;
    score.value = String(value);
    score.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  }

  function submitRating() {
    var form = document.getElementById("rating-form");
    if (!form) return false;
    var rater = document.getElementById("rater");
    if (rater && !rater.value.trim()) { rater.focus(); return true; }
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
    return true;
  }

  // Compare page: a / b / t record "A (left) is better", "B (right) is better" or a tie, as the
  // form's buttons do (the name comes first: an empty rater field gets the focus instead).
  function prefer(key) {
    var form = document.getElementById("preference-form");
    if (!form) return false;
    var button = document.getElementById("prefer-" + (key === "a" ? "A" : key === "b" ? "B" : "tie"));
    if (!button) return false;
    var rater = document.getElementById("rater");
    if (rater && !rater.value.trim()) { rater.focus(); return true; }
    if (form.requestSubmit) form.requestSubmit(button); else button.click();
    return true;
  }

  function toggleHelp() {
    var help = document.getElementById("keys-help");
    if (help) help.hidden = !help.hidden;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var handled = false;
    if (/^[0-9.,]$/.test(event.key)) handled = typeKey(event.key);
    else if (event.key === "Enter") handled = submitRating();
    else if (event.key === "a" || event.key === "b" || event.key === "t") handled = prefer(event.key);
    else if (event.key === "n" || event.key === "ArrowRight") { follow("next"); handled = true; }
    else if (event.key === "p" || event.key === "ArrowLeft") { follow("prev"); handled = true; }
    else if (event.key === "?") { toggleHelp(); handled = true; }
    else if (event.key === "/") {
      var search = document.getElementById("search");
      if (search) { search.focus(); handled = true; }
    }
    if (handled) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    // Filters apply as soon as a level is picked.
    var selects = document.querySelectorAll("select.auto-submit");
    Array.prototype.forEach.call(selects, function (select) {
      select.addEventListener("change", function () {
        if (select.form.requestSubmit) select.form.requestSubmit(); else select.form.submit();
      });
    });
    // Compare needs 2 to N ticked essays: say so instead of leaving the page (the ticks stay).
    var compare = document.getElementById("compare-form");
    if (compare) {
      compare.addEventListener("submit", function (event) {
        var max = parseInt(compare.dataset.max || "4", 10);
        var ticked = compare.querySelectorAll("input[name=essays]:checked").length;
        if (ticked >= 2 && ticked <= max) return;
        event.preventDefault();
        var problem = document.getElementById("compare-problem");
        if (problem) problem.textContent = "Tick 2 to " + max + " essays to compare (" + ticked + " ticked).";
      });
    }
    // A link to an evaluation (#eval-…) opens its response.
    if (window.location.hash) {
      var target = document.getElementById(window.location.hash.slice(1));
      if (target && target.tagName === "DETAILS") target.open = true;
    }
    // Rating pages start with the keyboard on the essay, not in a field.
    var rater = document.getElementById("rater");
    if (rater && document.body.classList.contains("page-rate") && !rater.value) rater.focus();
  });
})();
