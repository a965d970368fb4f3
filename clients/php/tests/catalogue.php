<?php

declare(strict_types=1);

// Prints the library's view of the catalogue as JSON, for the check that it
// matches webhookd's (tests/tests/php_publisher.rs): the events with their
// descriptions, the operational ones, and the events that have a typed
// `Publisher` method and a `WebhookService::notify*` method.

require __DIR__ . '/bootstrap.php';

use Webhookd\CrmEvents\Catalogue;
use Webhookd\CrmEvents\Publisher;
use Webhookd\CrmEvents\WebhookService;

$events = [];
foreach (Catalogue::EVENTS as $name => $description) {
    $events[] = ['name' => $name, 'description' => $description];
}
$typed = static fn (string $class, string $prefix) => array_values(array_filter(
    array_keys(Catalogue::EVENTS),
    static function (string $event) use ($class, $prefix): bool {
        $method = Publisher::methodFor($event);
        $method = $prefix === '' ? $method : $prefix . ucfirst($method);

        return method_exists($class, $method);
    },
));

echo json_encode([
    'events' => $events,
    'operational' => Catalogue::OPERATIONAL,
    'publisher_methods' => $typed(Publisher::class, ''),
    'service_methods' => $typed(WebhookService::class, 'notify'),
], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
