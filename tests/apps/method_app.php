<?php
// A small real application for the end-to-end tests: it dispatches each request to the
// handler of the method a PHP framework would run it as, and records every handler run.
//
//  - `_method` from the form body ($_POST, which PHP parses for urlencoded and multipart
//    bodies) or the query ($_GET), read under every name PHP folds to it (`.method`,
//    ` _method`, `_method%00`): PHP does the folding itself;
//  - the X-HTTP-Method-Override, X-HTTP-Method and X-Method-Override headers, and their
//    aliases ($_SERVER folds X.HTTP.Method.Override into HTTP_X_HTTP_METHOD_OVERRIDE);
//  - HEAD runs the GET handler.
//
// Run: php -S 127.0.0.1:PORT tests/apps/method_app.php, with APP_LOG naming the file
// each handler run is appended to (one JSON object per line).

$method = strtoupper($_SERVER['REQUEST_METHOD']);
foreach (['HTTP_X_HTTP_METHOD_OVERRIDE', 'HTTP_X_HTTP_METHOD', 'HTTP_X_METHOD_OVERRIDE'] as $header) {
    if (isset($_SERVER[$header]) && is_string($_SERVER[$header]) && $_SERVER[$header] !== '') {
        $method = strtoupper(trim($_SERVER[$header]));
    }
}
foreach ([$_GET, $_POST] as $params) {
    if (isset($params['_method']) && is_string($params['_method']) && $params['_method'] !== '') {
        $method = strtoupper(trim($params['_method']));
    }
}
if ($method === 'HEAD') {
    $method = 'GET';
}
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$run = [
    'method' => $method,
    'path' => $path,
    'uri' => $_SERVER['REQUEST_URI'],
    'user' => $_SERVER['HTTP_X_AUTHGEAR_USER_ID'] ?? '',
];
file_put_contents(getenv('APP_LOG'), json_encode($run) . "\n", FILE_APPEND | LOCK_EX);
header('X-Handler: ' . $method . ' ' . $path);
header('Content-Type: text/plain');
echo "handled by the $method handler\n";
