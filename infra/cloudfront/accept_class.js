// imgpress on-demand variants: the viewer-request function of the CDN's `<OUTPUT_PREFIX>*/od/*`
// behaviour (infra/resources.json holds this file as its FunctionCode; a test keeps them equal).
// It normalises Accept to one of three classes, so the cache keeps at most three copies of a URL
// however many browsers ask, and rewrites `<width>.auto` to the class's format, so a stored AVIF
// or WebP variant is found in S3 without asking the API. The same rule as transforms.negotiate.
function accepts(accept, type) {
  var parts = accept.split(',');
  for (var i = 0; i < parts.length; i++) {
    var params = parts[i].split(';');
    if (params[0].trim() !== type) continue;
    for (var j = 1; j < params.length; j++) {
      var param = params[j].trim();
      if (param.indexOf('q=') === 0) return parseFloat(param.substring(2)) > 0;
    }
    return true;
  }
  return false;
}

function handler(event) {
  var request = event.request;
  var header = request.headers.accept;
  var accept = header ? header.value.toLowerCase() : '';
  var kind = accepts(accept, 'image/avif') ? 'avif' : accepts(accept, 'image/webp') ? 'webp' : 'jpeg';
  request.headers.accept = { value: 'image/' + kind };
  if (kind !== 'jpeg' && /\/[0-9]+\.auto$/.test(request.uri)) {
    request.uri = request.uri.replace(/\.auto$/, '.' + kind);
  }
  return request;
}
