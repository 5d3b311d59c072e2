//! The application context every function builds once, at init: configuration plus one client
//! per port. Tests build it with `App::new` from fixed values and a loopback endpoint.

use std::sync::Arc;

use crate::config::{Config, DbConfig, Destination};
use crate::db::DbSource;
use crate::error::Result;
use crate::iam_auth::IamAuth;
use crate::notify::{LogNotifier, Notifier, SnsNotifier};
use crate::secrets::{SecretSource, SecretsManager};
use crate::store::{LocalStore, ObjectStore, S3Store};

/// Configuration and the adapters built from it.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Arc<dyn ObjectStore>,
    pub notifier: Arc<dyn Notifier>,
    pub db: DbSource,
    /// Secrets Manager, for the database and the media source's credentials.
    pub secrets: Arc<dyn SecretSource>,
    /// Wraps the stores a job opens besides `store` (the media source); tests check every call
    /// against `access` this way. `None` in the functions.
    pub source_layer: Option<StoreLayer>,
    /// The SDK's settings, for clients a job builds for another endpoint (a media source);
    /// `None` when the configuration needs no AWS service (see [`App::sdk`]).
    sdk: Option<aws_config::SdkConfig>,
}

impl App {
    /// Reads the environment and the SDK's own settings (`AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// credentials). `default_destination` applies when `BACKSTOP_BUCKET` is unset.
    pub async fn from_env(default_destination: Option<Destination>) -> Result<Self> {
        App::with_config(Config::from_env(default_destination)?).await
    }

    /// Builds the clients for `config` with the SDK's settings from the environment.
    ///
    /// A configuration that needs no AWS service (a local destination, a database URL, no
    /// topic: the CLI on a laptop or a server) loads nothing: looking for a region would ask
    /// the instance metadata service, and warn, on every command.
    pub async fn with_config(config: Config) -> Result<Self> {
        if !config.needs_aws() {
            let sdk = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build();
            return Ok(App { sdk: None, ..App::new(&sdk, config)? });
        }
        App::new(&load_sdk().await, config)
    }

    /// The SDK's settings, loaded now if init did not need them (a media restore into S3 from
    /// a local destination).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        match &self.sdk {
            Some(sdk) => sdk.clone(),
            None => load_sdk().await,
        }
    }

    /// Builds every client once from an SDK config and a [`Config`].
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Result<Self> {
        let store: Arc<dyn ObjectStore> = match &config.destination {
            Destination::S3 { bucket } => Arc::new(S3Store::new(sdk, bucket, &config.s3)),
            Destination::Local { root } => Arc::new(LocalStore::new(root)),
        };
        let notifier: Arc<dyn Notifier> = match &config.sns_topic_arn {
            Some(arn) => Arc::new(SnsNotifier::new(sdk, arn)),
            None => Arc::new(LogNotifier),
        };
        let secrets: Arc<dyn SecretSource> = Arc::new(SecretsManager::new(sdk));
        let db_secrets = matches!(config.db, DbConfig::Secret { .. }).then(|| secrets.clone());
        let iam = matches!(config.db, DbConfig::Iam(_)).then(|| IamAuth::new(sdk)).transpose()?;
        let db = DbSource::new(&config.db, &config.db_tls, db_secrets, iam)?;
        Ok(App { config, store, notifier, db, secrets, source_layer: None, sdk: Some(sdk.clone()) })
    }

    /// `store` as the jobs see it: through `source_layer` where one is set.
    pub fn layered(&self, store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        match &self.source_layer {
            Some(layer) => (layer.0)(store),
            None => store,
        }
    }
}

/// What a [`StoreLayer`] does: takes a store, gives the store jobs use instead.
pub type WrapStore = dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send + Sync;

/// A function that wraps an object store (an auditing or fault-injecting layer in tests).
#[derive(Clone)]
pub struct StoreLayer(pub Arc<WrapStore>);

impl std::fmt::Debug for StoreLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLayer")
    }
}

async fn load_sdk() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
