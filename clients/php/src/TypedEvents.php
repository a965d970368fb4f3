<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

use Webhookd\CrmEvents\Exception\InvalidEvent;
use Webhookd\CrmEvents\Exception\PublishFailed;

/**
 * One method per event a CRM publishes (every catalogue event but webhookd's
 * operational ones), named after it: `task.created` is `taskCreated`. Each
 * returns the event id. A test (tests/tests/php_publisher.rs) fails when this
 * list and the catalogue differ.
 *
 * `$data` is the payload receivers get, an associative array, e.g. for
 * `task.created`: `['task_id' => 123, 'title' => 'Новая задача', 'status' =>
 * 'pending', 'priority' => 'medium', 'created_at' => $at->format(DATE_ATOM)]`.
 * `$userId` makes the event private to that CRM user's webhooks (and admins').
 *
 * @throws InvalidEvent|PublishFailed (every method)
 */
trait TypedEvents
{
    /**
     * @param array<string, mixed>|object $data
     */
    abstract public function send(string $event, array|object $data, ?int $userId = null, ?string $id = null): string;

    /** @param array<string, mixed>|object $data */
    public function taskCreated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('task.created', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function taskUpdated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('task.updated', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function taskCompleted(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('task.completed', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function taskDeleted(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('task.deleted', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function dealCreated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('deal.created', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function dealWon(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('deal.won', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function dealLost(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('deal.lost', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function clientCreated(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('client.created', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function commentAdded(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('comment.added', $data, $userId, $id);
    }

    /** @param array<string, mixed>|object $data */
    public function webhookTest(array|object $data, ?int $userId = null, ?string $id = null): string
    {
        return $this->send('webhook.test', $data, $userId, $id);
    }

    /** The method publishing `$event`: `task.created` => `taskCreated`. */
    public static function methodFor(string $event): string
    {
        [$entity, $action] = \explode('.', $event, 2) + [1 => ''];

        return $entity . \str_replace(' ', '', \ucwords(\str_replace('_', ' ', $action)));
    }
}
