<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/** The broker nacked the event: it did not take responsibility for it. */
final class EventRefused extends PublishFailed
{
}
