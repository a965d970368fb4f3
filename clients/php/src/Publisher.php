<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AbstractConnection;
use PhpAmqpLib\Connection\AMQPConnectionConfig;
use PhpAmqpLib\Connection\AMQPConnectionFactory;
use PhpAmqpLib\Exception\AMQPExceptionInterface;
use PhpAmqpLib\Exception\AMQPIOException;
use PhpAmqpLib\Exception\AMQPProtocolException;
use PhpAmqpLib\Exception\AMQPRuntimeException;
use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;
use Webhookd\CrmEvents\Exception\ConfirmTimeout;
use Webhookd\CrmEvents\Exception\ConnectionFailed;
use Webhookd\CrmEvents\Exception\EventRefused;
use Webhookd\CrmEvents\Exception\InvalidBrokerUrl;
use Webhookd\CrmEvents\Exception\InvalidConfiguration;
use Webhookd\CrmEvents\Exception\InvalidEvent;
use Webhookd\CrmEvents\Exception\PublishFailed;
use Webhookd\CrmEvents\Exception\UnroutableEvent;

/**
 * Publishes events to webhookd's exchange as the Rust producer does: routing
 * key = event name, persistent, `application/json`, `message_id` = event id,
 * `mandatory` (an event no queue receives is an error, not a silent drop),
 * and counted as published only once the broker confirmed it.
 *
 * Connects on the first publish (a PHP request that publishes nothing opens
 * no connection), to the first of the URLs that answers; declares the
 * topology on every new connection. When the connection breaks during a
 * publish, it reconnects to the next URL and publishes again with the same
 * id: the event may reach the queue twice, and the daemon delivers it once.
 *
 * One publish at a time, like PHP itself: not for sharing between threads.
 */
final class Publisher
{
    use TypedEvents;

    /** @var list<BrokerUrl> */
    private readonly array $urls;

    private readonly Topology $topology;

    private ?AbstractConnection $connection = null;

    private ?AMQPChannel $channel = null;

    /** Index in $urls of the node connected to, or to try first. */
    private int $node = 0;

    /** What the broker answered about the message being published. */
    private ?UnroutableEvent $returned = null;

    private bool $nacked = false;

    /**
     * @param string|list<string> $urls one `amqp://` URL, several separated by
     *        commas, or a list: the nodes of a cluster, tried in order
     * @param float $confirmTimeout seconds to wait for the broker's confirm
     * @param float $connectionTimeout seconds to wait for each node to answer
     * @param int $maxMessageBytes the daemon's `broker.max_message_bytes`
     *
     * @throws InvalidBrokerUrl|InvalidConfiguration
     */
    public function __construct(
        #[\SensitiveParameter] string|array $urls,
        ?Topology $topology = null,
        private readonly float $confirmTimeout = 5.0,
        private readonly float $connectionTimeout = 3.0,
        private readonly string $connectionName = 'webhookd-crm-events-php',
        private readonly int $maxMessageBytes = Event::DEFAULT_MAX_BYTES,
    ) {
        $list = \is_string($urls) ? \explode(',', $urls) : $urls;
        $list = \array_values(\array_filter(\array_map('trim', $list), static fn (string $u) => $u !== ''));
        if ($list === []) {
            throw new InvalidConfiguration('no broker URL given (set CRM_EVENTS_AMQP_URL)');
        }
        $this->urls = \array_map(BrokerUrl::parse(...), $list);
        $this->topology = $topology ?? new Topology();
        foreach (['confirmTimeout' => $confirmTimeout, 'connectionTimeout' => $connectionTimeout] as $name => $value) {
            if (!($value > 0)) {
                throw new InvalidConfiguration("`{$name}` must be a positive number of seconds");
            }
        }
        if ($maxMessageBytes < 1024) {
            throw new InvalidConfiguration('`maxMessageBytes` must be at least 1024, as broker.max_message_bytes');
        }
    }

    /**
     * A publisher for the URLs in the environment variable `$variable`
     * (comma-separated for a cluster).
     *
     * @throws InvalidBrokerUrl|InvalidConfiguration
     */
    public static function fromEnv(string $variable = 'CRM_EVENTS_AMQP_URL', ?Topology $topology = null): self
    {
        $value = $_ENV[$variable] ?? $_SERVER[$variable] ?? \getenv($variable);
        if (!\is_string($value) || \trim($value) === '') {
            throw new InvalidConfiguration("environment variable {$variable} is not set: give it the broker's amqp:// URL");
        }

        return new self($value, $topology);
    }

    /**
     * Builds a message for `$event`, validated as the daemon validates, and
     * publishes it.
     *
     * @param array<string, mixed>|object $data
     *
     * @return string the event id
     *
     * @throws InvalidEvent|PublishFailed
     */
    public function send(string $event, array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publish(new Event($event, $data, $userId, $id, null, $this->maxMessageBytes));
    }

    /**
     * Publishes `$event` and waits for the broker's confirm.
     *
     * @return string the event id
     *
     * @throws InvalidEvent when the body is over `maxMessageBytes`
     * @throws UnroutableEvent when no queue is bound for the event
     * @throws EventRefused when the broker nacks it
     * @throws ConfirmTimeout when no confirm came within `confirmTimeout`
     * @throws ConnectionFailed when no node could take it
     * @throws PublishFailed when the broker closed the channel (the message says why)
     */
    public function publish(Event $event): string
    {
        $body = $event->toJson();
        if (\strlen($body) > $this->maxMessageBytes) {
            throw new InvalidEvent('data', \sprintf(
                'makes the message %d bytes, over the limit of %d bytes (broker.max_message_bytes)',
                \strlen($body),
                $this->maxMessageBytes,
            ));
        }
        $message = new AMQPMessage($body, [
            'content_type' => 'application/json',
            'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
            'message_id' => $event->id,
            'timestamp' => $event->timestamp,
        ]);
        // Once per node, and twice with one node: a broken connection is
        // worth one fresh attempt even when there is nowhere else to go.
        $attempts = \max(2, \count($this->urls));
        for ($attempt = 1; ; ++$attempt) {
            $channel = $this->channel($event->id);
            $this->returned = null;
            $this->nacked = false;
            try {
                $channel->basic_publish($message, $this->topology->exchange, $event->event, true);
                $channel->wait_for_pending_acks_returns($this->confirmTimeout);
            } catch (AMQPTimeoutException $e) {
                // The channel still counts the message as pending; a later
                // publish on it would wait for this one too.
                $this->close();
                throw new ConfirmTimeout($event->id, \sprintf(
                    'event %s (%s): no confirm from the broker within %.1f s; publish it again with the same id',
                    $event->id,
                    $event->event,
                    $this->confirmTimeout,
                ), $e);
            } catch (AMQPProtocolException $e) {
                $this->close();
                throw new PublishFailed($event->id, "event {$event->id} ({$event->event}): the broker refused it: "
                    . $e->getMessage(), $e);
            } catch (AMQPRuntimeException|AMQPIOException $e) {
                $this->close();
                if ($attempt >= $attempts) {
                    throw new ConnectionFailed($event->id, "event {$event->id} ({$event->event}): the connection "
                        . "broke and {$attempt} attempts failed: " . $e->getMessage(), $e);
                }
                $this->node = ($this->node + 1) % \count($this->urls);
                continue;
            }
            if ($this->returned !== null) {
                throw $this->returned;
            }
            if ($this->nacked) {
                throw new EventRefused($event->id, "event {$event->id} ({$event->event}): the broker nacked it");
            }

            return $event->id;
        }
    }

    /**
     * Connects now rather than on the first publish, to find a wrong URL or
     * topology at start-up.
     *
     * @throws ConnectionFailed when no node answers
     * @throws PublishFailed when the broker refuses the topology
     */
    public function connect(): void
    {
        $this->channel(null);
    }

    /** Closes the connection; a later publish reconnects. */
    public function close(): void
    {
        $connection = $this->connection;
        $this->connection = null;
        $this->channel = null;
        if ($connection === null) {
            return;
        }
        try {
            $connection->close();
        } catch (\Throwable) {
            // Already broken: nothing left to release but the socket.
            try {
                $connection->getIO()->close();
            } catch (\Throwable) {
            }
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    private function channel(?string $eventId): AMQPChannel
    {
        if ($this->channel !== null && $this->channel->is_open() && $this->connection?->isConnected()) {
            return $this->channel;
        }
        $this->close();
        $failures = [];
        $count = \count($this->urls);
        for ($i = 0; $i < $count; ++$i) {
            $node = ($this->node + $i) % $count;
            $url = $this->urls[$node];
            $connection = null;
            try {
                $connection = AMQPConnectionFactory::create($this->config($url));
                $channel = $connection->channel();
                $channel->confirm_select();
                $channel->set_return_listener($this->onReturn(...));
                $channel->set_nack_handler(function (): void {
                    $this->nacked = true;
                });
                $this->declare($channel);
                $this->connection = $connection;
                $this->channel = $channel;
                $this->node = $node;

                return $channel;
            } catch (AMQPProtocolException $e) {
                // The broker answered but refused a declaration (an exchange
                // or queue with other arguments): every node would refuse it.
                try {
                    $connection?->close();
                } catch (\Throwable) {
                }
                throw new PublishFailed($eventId, "{$url}: the broker refused the topology of exchange "
                    . "`{$this->topology->exchange}` (are the queue name and type webhookd's?): " . $e->getMessage(), $e);
            } catch (AMQPExceptionInterface|\ErrorException $e) {
                $failures[] = "{$url}: " . $e->getMessage();
                try {
                    $connection?->close();
                } catch (\Throwable) {
                }
            }
        }

        $what = $eventId === null ? '' : "event {$eventId}: ";

        throw new ConnectionFailed($eventId, $what . 'cannot connect to the broker: ' . \implode('; ', $failures));
    }

    private function config(BrokerUrl $url): AMQPConnectionConfig
    {
        $config = new AMQPConnectionConfig();
        $config->setHost($url->host);
        $config->setPort($url->port);
        $config->setUser($url->user);
        $config->setPassword($url->password);
        $config->setVhost($url->vhost);
        $config->setIsSecure($url->secure);
        $config->setConnectionTimeout($this->connectionTimeout);
        // Reads wait at most for a confirm; writes as long.
        $config->setReadTimeout(\max($this->confirmTimeout, $this->connectionTimeout) + 1.0);
        $config->setWriteTimeout(\max($this->confirmTimeout, $this->connectionTimeout) + 1.0);
        $config->setChannelRPCTimeout(\max($this->confirmTimeout, $this->connectionTimeout));
        $config->setConnectionName($this->connectionName);

        return $config;
    }

    private function declare(AMQPChannel $channel): void
    {
        foreach ($this->topology->declarations() as [$what, $args]) {
            match ($what) {
                'exchange' => $channel->exchange_declare($args['name'], $args['type'], false, true, false),
                'queue' => $channel->queue_declare(
                    $args['name'],
                    false,
                    true,
                    false,
                    false,
                    false,
                    self::table($args['arguments']),
                ),
                'bind' => $channel->queue_bind($args['queue'], $args['exchange'], $args['routing_key']),
            };
        }
    }

    /**
     * AMQP field table with the value types webhookd declares (strings are
     * long strings, integers 64-bit): RabbitMQ compares them on redeclaration.
     *
     * @param array<string, string|int> $arguments
     */
    private static function table(array $arguments): AMQPTable
    {
        $table = new AMQPTable();
        foreach ($arguments as $key => $value) {
            $table->set($key, $value, \is_int($value) ? AMQPTable::T_INT_LONGLONG : AMQPTable::T_STRING_LONG);
        }

        return $table;
    }

    private function onReturn(int $replyCode, string $replyText, string $exchange, string $routingKey, AMQPMessage $message): void
    {
        $id = $message->has('message_id') ? (string) $message->get('message_id') : '';
        $this->returned = new UnroutableEvent($id, $exchange, $routingKey, $replyCode, $replyText);
    }
}
