/* photobatch gallery viewer: lightbox, before/after comparison, keyboard and touch.
   Every text comes from the embedded JSON and is set with textContent, never as HTML. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("gallery-data").textContent);
  var photos = data.photos || [];
  var viewer = byId("viewer");
  var stage = byId("stage");
  var compare = byId("compare");
  var afterImg = byId("after");
  var beforeImg = byId("before");
  var divider = byId("divider");
  var prevButton = byId("prev");
  var nextButton = byId("next");
  var current = -1;
  var split = 50;
  var dragging = false;
  var returnFocus = null;

  function byId(id) { return document.getElementById(id); }

  function fillList(list, rows) {
    list.replaceChildren();
    rows.forEach(function (row) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = row[0];
      dd.textContent = row[1];
      list.append(dt, dd);
    });
  }

  function setSplit(percent) {
    split = Math.max(0, Math.min(100, percent));
    compare.style.setProperty("--split", split + "%");
    divider.setAttribute("aria-valuenow", String(Math.round(split)));
    divider.setAttribute("aria-valuetext", Math.round(split) + "% before");
  }

  // Fit the comparison box to the stage, keeping the photo's aspect ratio.
  function layout() {
    if (current < 0) { return; }
    var photo = photos[current];
    var style = getComputedStyle(stage);
    var width = stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var height = stage.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    var ratio = photo.after.w / photo.after.h;
    var w = Math.max(1, Math.min(width, height * ratio, photo.after.w));
    compare.style.width = Math.round(w) + "px";
    compare.style.height = Math.round(w / ratio) + "px";
  }

  function show(index) {
    current = (index + photos.length) % photos.length;
    var photo = photos[current];
    afterImg.src = photo.after.src;
    // Without its original (moved or deleted), the output is shown alone.
    compare.classList.toggle("no-before", !photo.before);
    byId("hint").hidden = !photo.before;
    byId("no-original").hidden = Boolean(photo.before);
    if (photo.before) { beforeImg.src = photo.before.src; } else { beforeImg.removeAttribute("src"); }
    afterImg.alt = photo.title + " after " + photo.recipe;
    beforeImg.alt = photo.title + " before";
    byId("viewer-title").textContent = photo.title;
    byId("viewer-recipe").textContent = photo.recipe;
    byId("viewer-count").textContent = (current + 1) + " of " + photos.length;
    fillList(byId("facts"), photo.facts);
    fillList(byId("recipe-facts"), photo.recipeFacts);
    fillList(byId("params"), photo.params);
    var download = byId("download");
    if (photo.download) {
      download.href = photo.download.href;
      download.setAttribute("download", photo.download.name);
      var main = document.createElement("span");
      var detail = document.createElement("span");
      main.className = "download-main";
      detail.className = "download-detail";
      main.textContent = "Download full resolution";
      detail.textContent = photo.download.label;
      download.replaceChildren(main, detail);
      download.hidden = false;
    } else {
      download.hidden = true;
      download.removeAttribute("href");
    }
    showFavourite();
    var map = byId("map");
    if (photo.map) {
      map.href = photo.map;
      map.hidden = false;
    } else {
      map.hidden = true;
      map.removeAttribute("href");
    }
    prevButton.disabled = photos.length < 2;
    nextButton.disabled = photos.length < 2;
    setSplit(50);
    layout();
    history.replaceState(null, "", "#photo-" + (current + 1));
    preload(current + 1);
    preload(current - 1);
  }

  function preload(index) {
    if (photos.length < 2) { return; }
    var photo = photos[(index + photos.length) % photos.length];
    [photo.after, photo.before].forEach(function (picture) {
      if (picture) { new Image().src = picture.src; }
    });
  }

  function open(index) {
    returnFocus = document.activeElement;
    viewer.hidden = false;
    document.body.classList.add("viewer-open");
    show(index);
    divider.focus({ preventScroll: true });
  }

  function close() {
    viewer.hidden = true;
    document.body.classList.remove("viewer-open");
    current = -1;
    history.replaceState(null, "", location.pathname + location.search);
    if (returnFocus && returnFocus.focus) { returnFocus.focus({ preventScroll: true }); }
  }

  function splitAt(clientX) {
    var box = compare.getBoundingClientRect();
    setSplit((clientX - box.left) / box.width * 100);
  }

  document.querySelectorAll(".tile").forEach(function (tile) {
    tile.addEventListener("click", function (event) {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) { return; }
      event.preventDefault();
      open(Number(tile.dataset.index));
    });
  });

  compare.addEventListener("pointerdown", function (event) {
    if (event.button !== 0 || compare.classList.contains("no-before")) { return; }
    dragging = true;
    compare.setPointerCapture(event.pointerId);
    splitAt(event.clientX);
    event.preventDefault();
  });
  compare.addEventListener("pointermove", function (event) {
    if (dragging) { splitAt(event.clientX); }
  });
  ["pointerup", "pointercancel", "lostpointercapture"].forEach(function (name) {
    compare.addEventListener(name, function () { dragging = false; });
  });

  divider.addEventListener("keydown", function (event) {
    var step = event.shiftKey ? 10 : 2;
    var moves = { ArrowLeft: split - step, ArrowRight: split + step, Home: 0, End: 100 };
    if (event.key in moves) {
      setSplit(moves[event.key]);
      event.preventDefault();
      event.stopPropagation();
    }
  });

  prevButton.addEventListener("click", function () { show(current - 1); });
  nextButton.addEventListener("click", function () { show(current + 1); });
  byId("close").addEventListener("click", close);
  stage.addEventListener("click", function (event) {
    if (event.target === stage) { close(); }
  });

  document.addEventListener("keydown", function (event) {
    if (viewer.hidden) { return; }
    if (event.key === "Escape") { close(); }
    else if (event.key === "ArrowLeft") { show(current - 1); }
    else if (event.key === "ArrowRight") { show(current + 1); }
    else if ((event.key === "f" || event.key === "F") && !event.metaKey && !event.ctrlKey) {
      toggleFavourite(current);
    }
    else { return; }
    event.preventDefault();
  });

  // Favourites: the client marks the photos they want; the list of their file names goes
  // back to the photographer (`photobatch export files NAME...` takes it as it is). Kept in
  // this browser only, per gallery, so a gallery made again keeps them.
  var favouritesKey = "photobatch-favourites:" + location.pathname;
  var favourites = loadFavourites();
  var favouriteButton = byId("favourite");
  var favouritesBar = byId("favourites");
  var favouritesList = byId("favourites-list");
  var favouritesHint = byId("favourites-hint");
  var onlyButton = byId("favourites-only");

  function photoKey(photo) { return photo.title + "\u0000" + photo.recipe; }

  function loadFavourites() {
    try {
      var saved = JSON.parse(localStorage.getItem(favouritesKey) || "[]");
      return new Set(Array.isArray(saved) ? saved : []);
    } catch (error) {
      return new Set();  // storage off (private mode): favourites last this visit
    }
  }

  function saveFavourites() {
    try { localStorage.setItem(favouritesKey, JSON.stringify(Array.from(favourites))); }
    catch (error) { /* storage off: kept in this page only */ }
  }

  function favouriteNames() {
    var names = [];
    photos.forEach(function (photo) {
      if (favourites.has(photoKey(photo)) && names.indexOf(photo.title) < 0) { names.push(photo.title); }
    });
    return names;
  }

  function showFavourite() {
    if (current < 0) { return; }
    var on = favourites.has(photoKey(photos[current]));
    favouriteButton.setAttribute("aria-pressed", String(on));
    favouriteButton.textContent = on ? "\u2665 Favourite" : "\u2661 Mark as favourite";
  }

  function showFavourites() {
    var count = 0;
    document.querySelectorAll(".tile").forEach(function (tile) {
      var on = favourites.has(photoKey(photos[Number(tile.dataset.index)]));
      tile.classList.toggle("is-favourite", on);
      if (on) { count += 1; }
    });
    favouritesBar.hidden = count === 0;
    byId("favourites-count").textContent = count === 1 ? "1 favourite" : count + " favourites";
    if (count === 0 && grid.classList.contains("favourites-only")) { showOnly(false); }
    if (!favouritesList.hidden) { favouritesList.value = favouriteNames().join("\n"); }
    showFavourite();
  }

  function toggleFavourite(index) {
    var key = photoKey(photos[index]);
    if (favourites.has(key)) { favourites.delete(key); } else { favourites.add(key); }
    saveFavourites();
    showFavourites();
  }

  function showOnly(only) {
    grid.classList.toggle("favourites-only", only);
    onlyButton.setAttribute("aria-pressed", String(only));
    onlyButton.textContent = only ? "Show all" : "Show only these";
    justifySoon();
  }

  favouriteButton.addEventListener("click", function () { toggleFavourite(current); });
  onlyButton.addEventListener("click", function () {
    showOnly(!grid.classList.contains("favourites-only"));
  });
  byId("favourites-clear").addEventListener("click", function () {
    favourites.clear();
    saveFavourites();
    favouritesList.hidden = true;
    favouritesHint.hidden = true;
    showFavourites();
  });
  byId("favourites-copy").addEventListener("click", function () {
    favouritesList.value = favouriteNames().join("\n");
    favouritesList.hidden = false;
    favouritesList.focus();
    favouritesList.select();
    favouritesHint.hidden = false;
    favouritesHint.textContent = "Selected: press Ctrl+C (\u2318C on a Mac) and send it to the photographer.";
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(favouritesList.value).then(function () {
        favouritesHint.textContent = "Copied: paste it into a message to the photographer.";
      }, function () { /* no clipboard here (a page opened from disk): the text is selected */ });
    }
  });

  window.addEventListener("resize", layout);

  // Justified rows: each row exactly fills the width at a height near --row.
  var grid = byId("grid");
  var tiles = Array.prototype.map.call(grid.querySelectorAll(".tile"), function (el) {
    return { el: el, ratio: parseFloat(el.style.getPropertyValue("--ar")) || 1.5 };
  });

  function placeRow(row, height, width, gap) {
    var used = 0;
    row.forEach(function (tile, i) {
      var w = i === row.length - 1 && height * tile.ratio > width - used - 0.5
        ? width - used : Math.floor(height * tile.ratio);
      tile.el.style.width = w + "px";
      tile.el.style.height = Math.round(height) + "px";
      used += w + gap;
    });
  }

  function justify() {
    var style = getComputedStyle(grid);
    var width = grid.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var gap = parseFloat(style.columnGap) || 0;
    var target = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--row")) || 260;
    if (width <= 0 || !tiles.length) { return; }
    var row = [];
    var ratios = 0;
    var heights = [];
    var only = grid.classList.contains("favourites-only");
    tiles.filter(function (tile) {
      return !only || tile.el.classList.contains("is-favourite");
    }).forEach(function (tile) {
      row.push(tile);
      ratios += tile.ratio;
      var gaps = gap * (row.length - 1);
      if (ratios * target + gaps >= width) {
        heights.push((width - gaps) / ratios);
        placeRow(row, heights[heights.length - 1], width, gap);
        row = [];
        ratios = 0;
      }
    });
    if (row.length) {
      // The last row matches the rows above; it fills the width only when that keeps it
      // close to their height (a near miss looks like a mistake, a giant last row too).
      var usual = heights.length ? heights.reduce(function (a, b) { return a + b; }) / heights.length
        : target;
      var fill = (width - gap * (row.length - 1)) / ratios;
      var limit = heights.length ? usual * 1.15 : target * 1.5;
      placeRow(row, fill <= limit ? fill : Math.min(usual, fill), width, gap);
    }
    grid.classList.add("justified");
  }

  var pending = false;
  function justifySoon() {
    if (pending) { return; }
    pending = true;
    requestAnimationFrame(function () { pending = false; justify(); });
  }
  justify();
  if (window.ResizeObserver) { new ResizeObserver(justifySoon).observe(grid); }
  else { window.addEventListener("resize", justifySoon); }
  showFavourites();

  var wanted = /^#photo-(\d+)$/.exec(location.hash);
  if (wanted && Number(wanted[1]) >= 1 && Number(wanted[1]) <= photos.length) {
    open(Number(wanted[1]) - 1);
  }
}());
