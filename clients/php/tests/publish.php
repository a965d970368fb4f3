<?php

declare(strict_types=1);

// Publishes one event with the library, for the end-to-end test
// (tests/tests/php_publisher.rs):
//
//   php publish.php URLS EXCHANGE QUEUE|- EVENT DATA_JSON [USER_ID]
//
// QUEUE `-` declares only the exchange. Prints the event id; on failure
// prints `ExceptionClass: message` to stderr and exits 2 for an event the
// library refused, 3 for an unroutable one, 4 for one the broker nacked, 1
// otherwise.

require __DIR__ . '/bootstrap.php';

use Webhookd\CrmEvents\Catalogue;
use Webhookd\CrmEvents\Exception\EventRefused;
use Webhookd\CrmEvents\Exception\InvalidEvent;
use Webhookd\CrmEvents\Exception\UnroutableEvent;
use Webhookd\CrmEvents\Publisher;
use Webhookd\CrmEvents\Topology;
use Webhookd\CrmEvents\WebhookService;

if ($argc < 6) {
    fwrite(STDERR, "usage: php publish.php URLS EXCHANGE QUEUE|- EVENT DATA_JSON [USER_ID]\n");
    exit(64);
}
[, $urls, $exchange, $queue, $event, $json] = $argv;
$userId = isset($argv[6]) ? (int) $argv[6] : null;

try {
    $topology = $queue === '-' ? Topology::exchangeOnly($exchange) : new Topology($exchange, $queue);
    $service = new WebhookService(new Publisher($urls, $topology));
    $data = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
    // The typed method, as a CRM service calls it; `notify` for names the
    // catalogue does not know and operational ones (the refusal tests).
    $method = 'notify' . ucfirst(Publisher::methodFor($event));
    $id = Catalogue::isKnown($event) && method_exists($service, $method)
        ? $service->{$method}($data, $userId)
        : $service->notify($event, $data, $userId);
    echo $id, "\n";
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(match (true) {
        $e instanceof InvalidEvent => 2,
        $e instanceof UnroutableEvent => 3,
        $e instanceof EventRefused => 4,
        default => 1,
    });
}
