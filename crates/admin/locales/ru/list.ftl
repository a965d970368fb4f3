# list: the webhooks page, and the little pieces of lists and tables.
list-title = Вебхуки
list-new = Новый вебхук
list-empty = Вебхуков пока нет.
list-create-first = Создайте первый.
list-caption = Доля успешных попыток за последние { $days ->
    [one] { $days } день
    [few] { $days } дня
   *[many] { $days } дней
}
list-col-name = Название
list-col-owner = Владелец
list-col-url = URL
list-col-events = События
list-col-state = Состояние
list-col-last = Последняя доставка
list-col-rate = Успешных
list-none-yet = пока не было
list-rate-of = из { $count }
list-all-users = Все пользователи
list-show = Показать
list-owner-unknown = пользователь { $id }
list-unit-ms = { $ms } мс
