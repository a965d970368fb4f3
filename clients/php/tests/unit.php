<?php

declare(strict_types=1);

// The library's unit tests, in plain PHP (no PHPUnit): `php tests/unit.php`.
// Prints one line per test; exits 1 when any fails. Run by
// tests/tests/php_publisher.rs. Needs no broker: the one connection test
// dials a port on 127.0.0.1 that nothing listens on.

require __DIR__ . '/bootstrap.php';

use Webhookd\CrmEvents\BrokerUrl;
use Webhookd\CrmEvents\Catalogue;
use Webhookd\CrmEvents\Event;
use Webhookd\CrmEvents\Exception\ConnectionFailed;
use Webhookd\CrmEvents\Exception\CrmEventsException;
use Webhookd\CrmEvents\Exception\InvalidBrokerUrl;
use Webhookd\CrmEvents\Exception\InvalidConfiguration;
use Webhookd\CrmEvents\Exception\InvalidEvent;
use Webhookd\CrmEvents\Publisher;
use Webhookd\CrmEvents\Topology;
use Webhookd\CrmEvents\Uuid;
use Webhookd\CrmEvents\WebhookService;

final class Failed extends Exception
{
}

$tests = [];
function test(string $name, callable $body): void
{
    $GLOBALS['tests'][$name] = $body;
}

function same(mixed $expected, mixed $actual, string $what = ''): void
{
    if ($expected !== $actual) {
        throw new Failed(sprintf(
            "%sexpected %s, got %s",
            $what === '' ? '' : "{$what}: ",
            var_export($expected, true),
            var_export($actual, true),
        ));
    }
}

function yes(bool $condition, string $what): void
{
    if (!$condition) {
        throw new Failed($what);
    }
}

/** Runs $body, which must throw $class with a message containing $needle. */
function throws(string $class, string $needle, callable $body): Throwable
{
    try {
        $body();
    } catch (Throwable $e) {
        if (!$e instanceof $class) {
            throw new Failed("expected {$class}, got " . get_class($e) . ': ' . $e->getMessage());
        }
        if (!str_contains($e->getMessage(), $needle)) {
            throw new Failed("expected a message containing `{$needle}`, got `{$e->getMessage()}`");
        }

        return $e;
    }
    throw new Failed("expected {$class}, nothing thrown");
}

function body(Event $event): array
{
    return json_decode($event->toJson(), true, 512, JSON_THROW_ON_ERROR);
}

/** A port on 127.0.0.1 nothing listens on: bound by the OS, then released. */
function closedPort(): int
{
    $server = stream_socket_server('tcp://127.0.0.1:0');
    yes($server !== false, 'a free port');
    $port = (int) substr((string) strrchr(stream_socket_get_name($server, false), ':'), 1);
    fclose($server);

    return $port;
}

test('a message has the id, event, timestamp, user_id and data the daemon reads', function (): void {
    $event = new Event('task.created', ['task_id' => 123, 'title' => 'Новая задача "срочно"'], 7, null, 1708435200);
    $body = body($event);
    same(['id', 'event', 'timestamp', 'user_id', 'data'], array_keys($body));
    same($event->id, $body['id']);
    same('task.created', $body['event']);
    same(1708435200, $body['timestamp']);
    same(7, $body['user_id']);
    same(['task_id' => 123, 'title' => 'Новая задача "срочно"'], $body['data']);
    // Unicode as is, like the original CRM's payloads (and smaller).
    yes(str_contains($event->toJson(), 'Новая задача'), 'unescaped unicode');
});

test('without a user id the field is left out, and the timestamp is now', function (): void {
    $before = time();
    $body = body(new Event('deal.won', ['deal_id' => 456]));
    $after = time();
    yes(!array_key_exists('user_id', $body), 'no user_id');
    yes($body['timestamp'] >= $before && $body['timestamp'] <= $after, 'timestamp is now');
});

test('an empty payload is the object {}, never the list []', function (): void {
    yes(str_ends_with((new Event('task.deleted', []))->toJson(), '"data":{}}'), 'data is {}');
    yes(str_ends_with((new Event('task.deleted', new stdClass()))->toJson(), '"data":{}}'), 'data is {}');
});

test('fractional amounts keep their decimals and whole ones stay integers', function (): void {
    $json = (new Event('deal.won', ['amount' => 100000, 'fee' => 10.0, 'rate' => 0.5]))->toJson();
    yes(str_contains($json, '"amount":100000,"fee":10.0,"rate":0.5'), $json);
});

test('a given id is used, lower-cased; a missing one is a fresh UUIDv7', function (): void {
    $id = '0192F1D2-7C3A-7B4E-8F00-000000000001';
    same(strtolower($id), (new Event('task.created', ['a' => 1], null, $id))->id);
    $a = new Event('task.created', ['a' => 1]);
    $b = new Event('task.created', ['a' => 1]);
    yes($a->id !== $b->id, 'fresh ids differ');
    yes(Uuid::isValid($a->id), 'a UUID');
    same('7', $a->id[14], 'version nibble');
    yes(in_array($a->id[19], ['8', '9', 'a', 'b'], true), 'RFC 4122 variant');
});

test('UUIDv7 ids start with the current unix milliseconds', function (): void {
    $before = (int) (microtime(true) * 1000);
    $id = Uuid::v7();
    $after = (int) (microtime(true) * 1000);
    $millis = hexdec(str_replace('-', '', substr($id, 0, 13)));
    yes($millis >= $before && $millis <= $after, "{$millis} within [{$before}, {$after}]");
});

test('event names that are not entity.action in lower case are refused, naming the field', function (): void {
    foreach (['', 'task', 'Task.Created', 'task.*', 'task.created.now', ' task.created', "task.created\n"] as $name) {
        $e = throws(InvalidEvent::class, '`event` must be `entity.action`', fn () => new Event($name, ['a' => 1]));
        same('event', $e->field);
    }
});

test('an event the catalogue does not know is refused', function (): void {
    throws(InvalidEvent::class, '`task.archived` is not in the catalogue', fn () => new Event('task.archived', []));
});

test("webhookd's own operational events cannot be published by the CRM", function (): void {
    foreach (Catalogue::OPERATIONAL as $name) {
        throws(InvalidEvent::class, 'published by webhookd itself', fn () => new Event($name, []));
    }
});

test('data must be an object: a list, or JSON that is not an object, is refused', function (): void {
    throws(InvalidEvent::class, '`data` must be an object', fn () => new Event('task.created', [1, 2]));
    $scalar = new class () implements JsonSerializable {
        public function jsonSerialize(): mixed
        {
            return 'text';
        }
    };
    throws(InvalidEvent::class, '`data` must encode to a JSON object, got string', fn () => new Event('task.created', $scalar));
});

test('data that JSON cannot carry is refused with the reason', function (): void {
    throws(InvalidEvent::class, '`data` cannot be encoded as JSON: Malformed UTF-8', fn () => new Event('task.created', ['title' => "\xff"]));
    throws(InvalidEvent::class, '`data` cannot be encoded as JSON', fn () => new Event('task.created', ['amount' => INF]));
    $deep = ['leaf' => 1];
    for ($i = 0; $i < 200; ++$i) {
        $deep = ['d' => $deep];
    }
    throws(InvalidEvent::class, '`data` cannot be encoded as JSON: Maximum stack depth', fn () => new Event('task.created', $deep));
});

test('a message over the size limit is refused with both sizes', function (): void {
    $data = ['text' => str_repeat('x', 2000)];
    throws(InvalidEvent::class, 'over the limit of 1024 bytes (broker.max_message_bytes)', fn () => new Event('comment.added', $data, null, null, null, 1024));
    yes(strlen((new Event('comment.added', $data, null, null, null, 4096))->toJson()) > 2000, 'fits in 4096');
});

test('an id that is not a UUID is refused', function (): void {
    throws(InvalidEvent::class, '`id` must be a UUID', fn () => new Event('task.created', [], null, 'task-123'));
});

test('broker URLs: defaults, percent-decoding, vhost, amqps port, masked password', function (): void {
    $url = BrokerUrl::parse('amqp://crm:p%40ss@127.0.0.1/%2f');
    same([false, '127.0.0.1', 5672, 'crm', 'p@ss', '/'], [$url->secure, $url->host, $url->port, $url->user, $url->password, $url->vhost]);
    same('amqp://crm:***@127.0.0.1/%2f', (string) $url);
    same('/', BrokerUrl::parse('amqp://127.0.0.1')->vhost);
    same('guest', BrokerUrl::parse('amqp://127.0.0.1:5673')->user);
    same('crm', BrokerUrl::parse('amqp://u:p@127.0.0.1:5673/crm')->vhost);
    same(5671, BrokerUrl::parse('amqps://u:p@localhost/x')->port);
    same(true, BrokerUrl::parse('amqps://u:p@localhost/x')->secure);
});

test('a URL that is not amqp is refused without showing its password', function (): void {
    $e = throws(InvalidBrokerUrl::class, 'scheme must be amqp or amqps', fn () => BrokerUrl::parse('http://u:secret@127.0.0.1/'));
    yes(!str_contains($e->getMessage(), 'secret'), 'password masked');
    throws(InvalidBrokerUrl::class, 'expected amqp://', fn () => BrokerUrl::parse('not a url'));
    throws(InvalidBrokerUrl::class, 'as %2f', fn () => BrokerUrl::parse('amqp://127.0.0.1/a/b'));
});

test("the topology is declared with webhookd's names and arguments", function (): void {
    same([
        ['exchange', ['name' => 'crm.events', 'type' => 'topic']],
        ['exchange', ['name' => 'crm.events.dlx', 'type' => 'fanout']],
        ['queue', ['name' => 'webhookd.events.dlq', 'arguments' => []]],
        ['bind', ['queue' => 'webhookd.events.dlq', 'exchange' => 'crm.events.dlx', 'routing_key' => '']],
        ['queue', ['name' => 'webhookd.events', 'arguments' => ['x-dead-letter-exchange' => 'crm.events.dlx']]],
        ['bind', ['queue' => 'webhookd.events', 'exchange' => 'crm.events', 'routing_key' => '#']],
    ], (new Topology())->declarations());
    $quorum = (new Topology('e', 'q', 'quorum'))->declarations();
    same(['x-queue-type' => 'quorum'], $quorum[2][1]['arguments']);
    same([
        'x-dead-letter-exchange' => 'e.dlx',
        'x-queue-type' => 'quorum',
        'x-dead-letter-strategy' => 'at-least-once',
        'x-overflow' => 'reject-publish',
        'x-delivery-limit' => 20,
    ], $quorum[4][1]['arguments']);
    same([['exchange', ['name' => 'e', 'type' => 'topic']]], Topology::exchangeOnly('e')->declarations());
    throws(InvalidConfiguration::class, '`queueType` must be classic or quorum', fn () => new Topology('e', 'q', 'stream'));
    throws(InvalidConfiguration::class, '`exchange` must be 1 to 255 bytes', fn () => new Topology(''));
});

test('a publisher needs a URL, from its argument or CRM_EVENTS_AMQP_URL', function (): void {
    throws(InvalidConfiguration::class, 'no broker URL given', fn () => new Publisher(' , '));
    throws(InvalidConfiguration::class, 'no broker URL given', fn () => new Publisher([]));
    putenv('CRM_EVENTS_AMQP_URL');
    unset($_ENV['CRM_EVENTS_AMQP_URL'], $_SERVER['CRM_EVENTS_AMQP_URL']);
    throws(InvalidConfiguration::class, 'CRM_EVENTS_AMQP_URL is not set', fn () => WebhookService::fromEnv());
    putenv('CRM_EVENTS_AMQP_URL=ftp://127.0.0.1');
    throws(InvalidBrokerUrl::class, 'scheme must be amqp', fn () => WebhookService::fromEnv());
    putenv('CRM_EVENTS_AMQP_URL');
    throws(InvalidConfiguration::class, '`confirmTimeout` must be a positive', fn () => new Publisher('amqp://127.0.0.1', null, 0.0));
});

test('an invalid event is refused before connecting', function (): void {
    // Nothing listens there: had it tried to connect, this would be a ConnectionFailed.
    $publisher = new Publisher('amqp://guest:guest@127.0.0.1:' . closedPort() . '/%2f');
    throws(InvalidEvent::class, '`event`', fn () => $publisher->send('Task.Created', ['a' => 1]));
    throws(InvalidEvent::class, '`data`', fn () => $publisher->taskCreated([1, 2, 3]));
});

test('when no node answers, publishing fails naming every node, password masked', function (): void {
    $a = closedPort();
    $b = closedPort();
    $publisher = new Publisher("amqp://guest:hunter2@127.0.0.1:{$a}/%2f, amqp://guest:hunter2@127.0.0.1:{$b}/%2f", null, 1.0, 1.0);
    $e = throws(ConnectionFailed::class, 'cannot connect to the broker', fn () => $publisher->taskCreated(['task_id' => 1]));
    yes(str_contains($e->getMessage(), ":{$a}/") && str_contains($e->getMessage(), ":{$b}/"), $e->getMessage());
    yes(!str_contains($e->getMessage(), 'hunter2'), 'password masked');
    yes($e instanceof CrmEventsException, 'one interface catches them all');
    // The id travels with the failure, so a retry can reuse it.
    yes(Uuid::isValid((string) $e->eventId), 'the event id is kept');
    same(null, throws(ConnectionFailed::class, 'cannot connect', fn () => $publisher->connect())->eventId);
});

test('a connection failure during a publish names the event', function (): void {
    $publisher = new Publisher('amqp://guest:guest@127.0.0.1:' . closedPort() . '/%2f');
    $e = throws(ConnectionFailed::class, 'event ', fn () => $publisher->dealLost(['deal_id' => 1]));
    yes(str_starts_with($e->getMessage(), "event {$e->eventId}: cannot connect"), $e->getMessage());
});

test('method names follow the event names', function (): void {
    same('taskCreated', Publisher::methodFor('task.created'));
    same('commentAdded', Publisher::methodFor('comment.added'));
    same('dealStageChanged', Publisher::methodFor('deal.stage_changed'));
    same(Catalogue::publishable(), array_values(array_diff(array_keys(Catalogue::EVENTS), Catalogue::OPERATIONAL)));
});

$failed = 0;
foreach ($tests as $name => $body) {
    try {
        $body();
        echo "ok   {$name}\n";
    } catch (Throwable $e) {
        ++$failed;
        echo "FAIL {$name}: " . get_class($e) . ': ' . $e->getMessage() . "\n";
    }
}
printf("%d tests, %d failed\n", count($tests), $failed);
exit($failed === 0 ? 0 : 1);
