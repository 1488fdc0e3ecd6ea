// Retries the browser bundle's own downloads (/pkg/: the main module and the page chunks
// fetched when a page is first shown) when the network drops them. The chunk loader that
// `cargo leptos build --split` generates calls fetch() once and gives up, and a page whose
// chunk never arrived never hydrates; Chromium drops in-flight requests whenever the host's
// networks change (Docker creating or removing one is enough), so one lost request must not
// cost the user the page. Loaded as a classic script before the module scripts run.
(function () {
  'use strict';
  var original = window.fetch.bind(window);
  var TRIES = 5;
  function bundleGet(input, init) {
    var url = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url, location.href);
    var method = (init && init.method) || (input instanceof Request ? input.method : 'GET');
    return url.origin === location.origin && url.pathname.indexOf('/pkg/') === 0 && method.toUpperCase() === 'GET';
  }
  function pause(attempt) {
    return new Promise(function (resolve) { setTimeout(resolve, 100 * Math.pow(2, attempt)); });
  }
  window.fetch = async function (input, init) {
    if (!bundleGet(input, init)) return original(input, init);
    for (var attempt = 1; ; attempt++) {
      try {
        var response = await original(input, init);
        if (response.status < 500 || attempt >= TRIES) return response;
      } catch (err) {
        if (attempt >= TRIES) throw err;
      }
      await pause(attempt);
    }
  };
})();
