<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

use Webhookd\CrmEvents\Exception\InvalidConfiguration;
use Webhookd\CrmEvents\Exception\InvalidEvent;
use Webhookd\CrmEvents\Exception\PublishFailed;

/**
 * The CRM's `WebhookService`, with the same `notify*` methods its services
 * call (`$this->webhookService->notifyTaskCreated(...)`), publishing to
 * webhookd instead of posting to the webhooks itself. For Symfony, register
 * the {@see Publisher} (from `CRM_EVENTS_AMQP_URL`) and this class as
 * services; nothing here depends on Symfony (see the README).
 *
 * Every method returns the event id and throws {@see InvalidEvent} for a
 * payload the daemon would refuse, {@see PublishFailed} (or a subclass) when
 * the broker did not confirm the event: catch
 * {@see Exception\CrmEventsException} where a failed notification must not
 * fail the request.
 */
class WebhookService
{
    public function __construct(private readonly Publisher $publisher)
    {
    }

    /**
     * A service publishing to the URLs in `CRM_EVENTS_AMQP_URL`.
     *
     * @throws InvalidConfiguration|Exception\InvalidBrokerUrl
     */
    public static function fromEnv(string $variable = 'CRM_EVENTS_AMQP_URL'): self
    {
        return new self(Publisher::fromEnv($variable));
    }

    /**
     * Any catalogue event, for one added to the catalogue before this
     * library has a method for it.
     *
     * @param array<string, mixed>|object $data
     */
    public function notify(string $event, array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->send($event, $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `task.created` payload */
    public function notifyTaskCreated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->taskCreated($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `task.updated` payload */
    public function notifyTaskUpdated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->taskUpdated($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `task.completed` payload */
    public function notifyTaskCompleted(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->taskCompleted($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `task.deleted` payload */
    public function notifyTaskDeleted(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->taskDeleted($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `deal.created` payload */
    public function notifyDealCreated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->dealCreated($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `deal.won` payload */
    public function notifyDealWon(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->dealWon($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `deal.lost` payload */
    public function notifyDealLost(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->dealLost($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `client.created` payload */
    public function notifyClientCreated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->clientCreated($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `comment.added` payload */
    public function notifyCommentAdded(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->commentAdded($data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data the `webhook.test` payload */
    public function notifyWebhookTest(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->publisher->webhookTest($data, $userId, $id);
    }
}
