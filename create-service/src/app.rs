//! create-service as a server: its routes and background work ([`CreateService`]),
//! mounted on the shared server builder alone ([`start`], [`run`]) or beside lookup
//! and stats in the all-in-one.

use std::time::Duration;

use actix_web::web;
use common::background::TaskGroup;
use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::server::{Running, ServiceBuilder};

use crate::http;
use crate::state::CreateState;

/// Mounts the link API and the web page (`/`, `/static/…`), which uses it. Needs
/// `web::Data<CreateState>` in the app.
pub fn routes(settings: &Settings) -> impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static {
    let json_limit = settings.http.json_body_limit_bytes;
    let bulk_limit = settings.http.bulk_body_limit_bytes;
    move |cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(http::openapi::openapi_json),
        )
        .service(
            web::resource("/api/v1/links/bulk")
                .app_data(common::http::json_config(bulk_limit))
                .route(web::post().to(http::bulk::create_bulk)),
        )
        .service(
            web::resource("/api/v1/links")
                .app_data(common::http::json_config(json_limit))
                .route(web::post().to(http::create::create_link))
                .route(web::get().to(http::list::list_links)),
        )
        .service(
            web::resource("/api/v1/links/{code}")
                .app_data(common::http::json_config(json_limit))
                .route(web::get().to(http::get::get_link))
                .route(web::patch().to(http::update::update_link))
                .route(web::delete().to(http::delete::delete_link)),
        )
        .route("/api/v1/links/{code}/qr", web::get().to(http::qr::link_qr))
        .service(
            web::resource("/api/v1/domains")
                .app_data(common::http::json_config(json_limit))
                .route(web::post().to(http::domains::create_domain))
                .route(web::get().to(http::domains::list_domains)),
        )
        .service(
            web::resource("/api/v1/domains/{name}")
                .app_data(common::http::json_config(json_limit))
                .route(web::get().to(http::domains::get_domain))
                .route(web::patch().to(http::domains::update_domain))
                .route(web::delete().to(http::domains::delete_domain)),
        )
        .service(
            web::resource("/api/v1/keys")
                .app_data(common::http::json_config(json_limit))
                .route(web::post().to(http::keys::create_key))
                .route(web::get().to(http::keys::list_keys)),
        )
        // Resources, not bare routes: another method on them answers 405.
        .service(web::resource("/api/v1/keys/{id}").route(web::delete().to(http::keys::delete_key)))
        .service(
            web::resource("/api/v1/keys/{id}/rotate").route(web::post().to(http::keys::rotate_key)),
        )
        .service(
            web::resource("/api/v1/members")
                .app_data(common::http::json_config(json_limit))
                .route(web::post().to(http::members::add_member))
                .route(web::get().to(http::members::list_members)),
        )
        .service(
            web::resource("/api/v1/members/{id}")
                .app_data(common::http::json_config(json_limit))
                .route(web::patch().to(http::members::update_member))
                .route(web::delete().to(http::members::remove_member)),
        )
        .service(web::resource("/api/v1/audit").route(web::get().to(http::audit::read_audit)))
        .service(
            web::resource("/api/v1/webhooks")
                .app_data(common::http::json_config(json_limit))
                .route(web::post().to(http::webhooks::create_webhook))
                .route(web::get().to(http::webhooks::list_webhooks)),
        )
        .service(
            web::resource("/api/v1/webhooks/{id}")
                .app_data(common::http::json_config(json_limit))
                .route(web::get().to(http::webhooks::get_webhook))
                .route(web::patch().to(http::webhooks::update_webhook))
                .route(web::delete().to(http::webhooks::delete_webhook)),
        )
        .service(
            web::resource("/api/v1/webhooks/{id}/test")
                .route(web::post().to(http::webhooks::test_webhook)),
        )
        .service(
            web::resource("/api/v1/webhooks/{id}/messages")
                .route(web::get().to(http::webhooks::list_messages)),
        )
        .service(
            web::resource("/api/v1/webhooks/{id}/attempts")
                .route(web::get().to(http::webhooks::list_attempts)),
        )
        .service(
            web::resource("/api/v1/webhooks/{id}/replay")
                .route(web::post().to(http::webhooks::replay_all)),
        )
        .service(
            web::resource("/api/v1/webhooks/{id}/messages/{message_id}/replay")
                .route(web::post().to(http::webhooks::replay_one)),
        )
        .configure(crate::web::routes);
    }
}

/// create-service's state with its background work running: the change relay, the
/// group-commit writers and the idempotency purge.
pub struct CreateService {
    pub state: web::Data<CreateState>,
    relay: TaskGroup,
}

impl CreateService {
    /// Builds the state and starts its work on `deps.background`.
    pub async fn start(deps: &Deps) -> anyhow::Result<CreateService> {
        let state = web::Data::new(CreateState::build(deps).await?);
        state.auth.follow_changes(deps);
        let background = &deps.background;
        let relay = background.group();
        let relayed = state.relay.clone();
        relay.spawn_graceful(|stop| relayed.run(stop));
        if let Some(group) = &state.group_commit {
            for _ in 0..deps.settings.database.group_commit_writers {
                background.spawn(group.writer(deps.db.clone()));
            }
        }
        background.spawn(crate::state::purge_idempotency_records(deps.db.clone()));
        background.spawn(common::audit::purge_expired(
            deps.db.clone(),
            deps.settings.audit.retention,
        ));
        Ok(CreateService { state, relay })
    }

    /// Adds the API's data and routes.
    pub fn mount(&self, builder: ServiceBuilder, settings: &Settings) -> ServiceBuilder {
        builder.data(self.state.clone()).routes(routes(settings))
    }

    /// The readiness checks of `deps` plus the worker-id lease: an instance that may
    /// not issue ids must not receive create traffic.
    pub fn readiness(&self, deps: &Deps) -> common::health::Readiness {
        crate::state::with_lease_check(deps.readiness(), &self.state)
    }

    /// Shutdown step: publish the changes still pending, then let the relay go.
    pub fn stop_relay(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let relay = self.relay.clone();
        async move {
            // The relay bounds its own drain; this only guards against a stuck one.
            if !relay.stop(Duration::from_secs(10)).await {
                tracing::warn!("link-change relay did not stop in time");
            }
        }
    }

    /// Shutdown step: free the worker-id lease, recording the newest id issued, so a
    /// restart can take the id at once.
    pub fn release_lease(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let state = self.state.clone();
        async move { state.release_lease().await }
    }
}

/// Serves create-service on `deps` (port 0 picks a free one).
pub async fn start(deps: Deps) -> anyhow::Result<Running> {
    let service = CreateService::start(&deps).await?;
    let builder = ServiceBuilder::new(&deps, service.readiness(&deps));
    service
        .mount(builder, &deps.settings)
        .on_stop("publish pending link changes", service.stop_relay())
        .on_stop("release the worker-id lease", service.release_lease())
        .start()
}

/// `main`: connects, serves until SIGTERM, stops in order.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let deps = Deps::connect(ServiceKind::Create, settings).await?;
    start(deps).await?.until_signal().await
}
