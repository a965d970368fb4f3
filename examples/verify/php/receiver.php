<?php
// Verifies webhookd deliveries the way the CRM always has: an HMAC-SHA256 of
// the raw body with the whole secret string (`whsec_...` prefix included) as
// the key, in `X-Webhook-Signature: sha256=<hex>`.
//
//   WEBHOOK_SECRET=whsec_... php -S 127.0.0.1:8000 receiver.php
//
// Answers 204 to a valid request and 401 to any other, and appends one JSON
// line per request to $RECEIVED_LOG (stdout when unset).

const TOLERANCE_SECS = 300;   // 5 minutes either way, as webhookd recommends

$secret = getenv('WEBHOOK_SECRET');
if ($secret === false || $secret === '') {
    http_response_code(500);
    exit("WEBHOOK_SECRET is not set\n");
}

// The raw bytes as sent: a re-encoded json_decode() would not match.
$payload = file_get_contents('php://input');
$delivery = $_SERVER['HTTP_X_WEBHOOK_ID'] ?? '';
$timestamp = $_SERVER['HTTP_X_WEBHOOK_TIMESTAMP'] ?? '';

$expected = 'sha256=' . hash_hmac('sha256', $payload, $secret);
$signed = hash_equals($expected, $_SERVER['HTTP_X_WEBHOOK_SIGNATURE'] ?? '');
// This signature covers the body only, so the timestamp header can be forged
// by whoever captured a request: the check limits careless replays, not
// deliberate ones (prefer the Standard Webhooks signature, which covers it).
$fresh = ctype_digit($timestamp) && abs(time() - (int) $timestamp) <= TOLERANCE_SECS;
$valid = $signed && $fresh;

$event = $valid ? json_decode($payload, true) : null;
record([
    'valid' => $valid,
    'webhook_id' => $delivery,
    'event_id' => $event['id'] ?? null,
    'error' => $valid ? null : (!$signed ? 'bad signature' : 'stale timestamp'),
]);
// Acting on the event goes here, once per `X-Webhook-Id` (deliveries can repeat).
http_response_code($valid ? 204 : 401);

function record(array $line): void
{
    $file = getenv('RECEIVED_LOG') ?: 'php://stdout';
    file_put_contents($file, json_encode($line) . "\n", FILE_APPEND | LOCK_EX);
}
