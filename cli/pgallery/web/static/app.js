// pgallery serve: small progressive enhancements. The page works without them: the form
// posts to /search, which answers with the GET address of the results (the URL is the state).
(function () {
  "use strict";
  var form = document.getElementById("search");
  if (!form) return;
  var fileInput = document.getElementById("image");
  var text = document.getElementById("text");

  function submitWith(file) {
    if (!file || !/^image\//.test(file.type || "image/")) return;
    var list = new DataTransfer();
    list.items.add(file);
    fileInput.files = list.files;
    form.submit();
  }

  // An image chosen with the picker is searched at once.
  fileInput.addEventListener("change", function () {
    if (fileInput.files.length) form.submit();
  });

  // Drag and drop anywhere on the page.
  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0) {
        event.preventDefault();
        form.classList.add("dragging");
      }
    });
  });
  ["dragleave", "dragend"].forEach(function (name) {
    document.addEventListener(name, function () { form.classList.remove("dragging"); });
  });
  document.addEventListener("drop", function (event) {
    form.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      event.preventDefault();
      submitWith(event.dataTransfer.files[0]);
    }
  });

  // Paste an image (a screenshot, a copied picture).
  document.addEventListener("paste", function (event) {
    var items = (event.clipboardData && event.clipboardData.items) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].kind === "file" && /^image\//.test(items[i].type)) {
        event.preventDefault();
        submitWith(items[i].getAsFile());
        return;
      }
    }
  });

  // "/" focuses the prompt, as on most search sites.
  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (event.key === "/" && tag !== "input" && tag !== "textarea" && tag !== "select") {
      event.preventDefault();
      text.focus();
      text.select();
    }
  });

  // Suggestions for author, technique and school from the collection, as you type.
  var timers = {};
  Array.prototype.forEach.call(form.querySelectorAll("input[data-suggest]"), function (input) {
    var field = input.getAttribute("data-suggest");
    var list = document.getElementById(field + "-values");
    input.addEventListener("input", function () {
      clearTimeout(timers[field]);
      timers[field] = setTimeout(function () {
        var q = input.value.trim();
        fetch("/api/suggest?field=" + encodeURIComponent(field) + "&q=" + encodeURIComponent(q),
              {headers: {"Accept": "application/json"}})
          .then(function (r) { return r.ok ? r.json() : {values: []}; })
          .then(function (data) {
            while (list.firstChild) list.removeChild(list.firstChild);
            data.values.forEach(function (value) {
              var option = document.createElement("option");
              option.value = value;
              list.appendChild(option);
            });
          })
          .catch(function () {});
      }, 150);
    });
  });

  // Swatches: the server's policy allows no inline style, so colours come from data-colour.
  Array.prototype.forEach.call(document.querySelectorAll("[data-colour]"), function (swatch) {
    swatch.style.backgroundColor = swatch.getAttribute("data-colour");
  });

  // A colour picked is added to the colours searched (up to five), and searched at once;
  // a prompt is cleared (one kind of query at a time).
  var picker = document.getElementById("colour-picker");
  var colours = document.getElementById("colour");
  if (picker && colours) {
    picker.addEventListener("change", function () {
      var list = colours.value.split(/[,\s]+/).filter(Boolean);
      list.push(picker.value.replace("#", ""));
      colours.value = list.slice(-5).join(",");
      text.value = "";
      form.submit();
    });
  }

  // Choosing a type, timeframe or page size applies it at once.
  Array.prototype.forEach.call(form.querySelectorAll(".filters-form select"), function (select) {
    select.addEventListener("change", function () { form.submit(); });
  });
})();
