<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

/**
 * The events webhookd knows, as in its catalogue (crates/events/src/catalogue.rs).
 * Kept in sync by a test (tests/tests/php_publisher.rs) that compares this
 * list, and the typed methods of {@see TypedEvents}, with the Rust one.
 */
final class Catalogue
{
    /** Every known event, `entity.action` => description, in the catalogue's order. */
    public const EVENTS = [
        'task.created' => 'A task was created',
        'task.updated' => 'A task was updated',
        'task.completed' => 'A task was completed',
        'task.deleted' => 'A task was deleted',
        'deal.created' => 'A deal was created',
        'deal.won' => 'A deal was won',
        'deal.lost' => 'A deal was lost',
        'client.created' => 'A client was created',
        'comment.added' => 'A comment was added',
        'webhook.test' => 'A test delivery sent from the UI or API',
        'webhook.disabled' => 'One of your webhooks was switched off (410 Gone, or failing too long)',
        'delivery.failed' => 'A delivery to one of your webhooks failed for good',
    ];

    /**
     * Events webhookd publishes about its own webhooks and deliveries: a CRM
     * publishing one would forge a report, so the library refuses them.
     */
    public const OPERATIONAL = ['webhook.disabled', 'delivery.failed'];

    /** What an event name looks like: `entity.action`, lower case (the daemon's routing keys). */
    public const NAME_PATTERN = '/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/D';

    public static function isKnown(string $event): bool
    {
        return \array_key_exists($event, self::EVENTS);
    }

    /** Known, and not one of webhookd's own operational events. */
    public static function isPublishable(string $event): bool
    {
        return self::isKnown($event) && !\in_array($event, self::OPERATIONAL, true);
    }

    /** @return list<string> the events a CRM may publish, in the catalogue's order */
    public static function publishable(): array
    {
        return \array_values(\array_filter(\array_keys(self::EVENTS), self::isPublishable(...)));
    }
}
