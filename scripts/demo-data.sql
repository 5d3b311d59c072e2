-- The demo database scripts/stack.sh creates: a small Django-like shop with generated rows.
create table auth_user (
    id bigserial primary key,
    username varchar(150) not null unique,
    email varchar(254) not null,
    date_joined timestamptz not null default now()
);
create table shop_product (
    id bigserial primary key,
    name text not null,
    price numeric(10, 2) not null check (price >= 0),
    tags text[] not null default '{}'
);
create table shop_order (
    id bigserial primary key,
    user_id bigint not null references auth_user (id),
    product_id bigint not null references shop_product (id),
    quantity int not null,
    note text,
    created_at timestamptz not null default now()
);
create index shop_order_user_id on shop_order (user_id);
create table notifications_notification (
    id bigserial primary key,
    recipient_id bigint not null references auth_user (id) on delete cascade,
    verb text not null,
    read boolean not null default false,
    data jsonb,
    created_at timestamptz not null
);
create index notifications_created on notifications_notification (created_at);

insert into auth_user (username, email, date_joined)
select 'user' || g, 'user' || g || '@example.com', now() - g * interval '1 hour'
from generate_series(1, 2000) g;
insert into shop_product (name, price, tags)
select 'Product ' || g || E'\twith tab', (g % 500) + 0.99, array['tag' || (g % 7), 'café']
from generate_series(1, 500) g;
insert into shop_order (user_id, product_id, quantity, note, created_at)
select 1 + g % 2000, 1 + g % 500, 1 + g % 5,
       case when g % 10 = 0 then E'gift\nwrap, "fragile" \\ thanks' end,
       now() - g * interval '1 minute'
from generate_series(1, 50000) g;
insert into notifications_notification (recipient_id, verb, read, data, created_at)
select 1 + g % 2000, 'order shipped', g % 3 <> 0, jsonb_build_object('order', g),
       now() - (g % 400) * interval '1 day'
from generate_series(1, 30000) g;
analyze;
