<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/**
 * The broker did not confirm in time. The event may or may not have been
 * kept: publish it again with the same id (`$eventId`) to be sure; the
 * daemon delivers an id once.
 */
final class ConfirmTimeout extends PublishFailed
{
}
