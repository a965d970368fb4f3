# logs: a webhook's attempts, one attempt in full, and the live rows.
logs-page-title = Журнал
logs-title = Журнал вебхука «{ $name }»
logs-empty = Попыток доставки пока не было.
logs-none-match = Нет попыток, подходящих под условия.
logs-pages = Страницы
logs-newest = Самые новые
logs-older = Более ранние попытки →
logs-filter-label = Отбор попыток
logs-of-delivery = Попытки доставки
logs-show-all = показать все
logs-any-event = Любое событие
logs-batch-event = пакет (попытки пакетов)
logs-any-outcome = Любой результат
logs-success = Успех
logs-failure = Ошибка
logs-from = С
logs-until = По
logs-time-format = ДД.ММ.ГГГГ ЧЧ:ММ
logs-time-hint = Время в вашем часовом поясе, например { $example }.
logs-filter = Показать
logs-reset = Сбросить
logs-attempts = Попытки
logs-col-time = Время
logs-col-event = Событие
logs-col-attempt = Попытка
logs-col-outcome = Результат
logs-col-took = Длительность
logs-col-error = Ошибка
logs-col-details = Подробности
logs-col-event-id = ID события
logs-col-timestamp = Время события
logs-view = Открыть
logs-attempt-n = попытку { $id }
logs-n-events = { $count ->
    [one] { $count } событие
    [few] { $count } события
   *[many] { $count } событий
}
logs-no-response = нет ответа
logs-error-event = Выберите событие из списка.
logs-error-outcome = Выберите результат из списка.
logs-error-time = В поле «{ $field }» нужны дата и время, например { $example }.
logs-error-delivery = Это не ID доставки.
logs-attempt-page-title = Попытка
logs-attempt-title = Попытка { $attempt }, событие
logs-delivery = Доставка
logs-all-its-attempts = все её попытки
logs-payload-sent = Отправленное тело запроса
logs-response-received = Полученный ответ
logs-batch-title = События в этом пакете ({ $count })
logs-batch-not-batch = Отправленное тело не похоже на пакет (изменено вручную?).
logs-batch-label = События в этом пакете
logs-retry = Повторить эту доставку
logs-retry-off = Вебхук выключен; включите его, чтобы повторять доставки.
