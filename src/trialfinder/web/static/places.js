/* Suggestions as you type, from this server's own list of places (GET /api/places?q=).
   No framework; the page works without it. Text only reaches the page as DOM properties,
   never as HTML. */
(function () {
  'use strict';
  var input = document.getElementById('place');
  var list = document.getElementById('place-options');
  if (!input || !list || !window.fetch) { return; }
  var timer = null, asked = '';

  function show(places, query) {
    if (input.value.trim() !== query) { return; }  /* typed on meanwhile */
    while (list.firstChild) { list.removeChild(list.firstChild); }
    places.forEach(function (place) {
      var option = document.createElement('option');
      option.value = place.value;
      if (place.label !== place.value) { option.label = place.label; }
      list.appendChild(option);
    });
  }

  function suggest() {
    var query = input.value.trim();
    if (query.length < 2 || query.length > 100 || query === asked) { return; }
    asked = query;
    fetch('/api/places?q=' + encodeURIComponent(query), {
      credentials: 'same-origin', headers: {'Accept': 'application/json'}
    }).then(function (response) {
      return response.ok ? response.json() : {places: []};
    }).then(function (data) {
      show(data.places || [], query);
    }).catch(function () { /* no suggestions: the form still works */ });
  }

  input.addEventListener('input', function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(suggest, 120);
  });
})();
