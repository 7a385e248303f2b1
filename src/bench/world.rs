//! A bench run's own database and queue names on the configured servers, removed afterwards.

use crate::amqp;
use crate::config::Config;
use crate::store;

pub struct World {
    /// The configuration pointed at this run's database and names.
    pub cfg: Config,
    /// A queue for the bare broker measurement, bound to nothing.
    pub broker_queue: String,
    admin_url: String,
    db_name: String,
}

impl World {
    /// The scratch database's name (reported, so that a caller can check it is gone).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    pub async fn create(base: &Config) -> anyhow::Result<World> {
        World::create_named(base, "xpb_bench").await
    }

    /// Like [`World::create`], the database named `<prefix>_<id>` (a scenario's own prefix,
    /// so a check for leftovers of one scenario is not confused by another running meanwhile).
    pub async fn create_named(base: &Config, prefix: &str) -> anyhow::Result<World> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let db_name = format!("{prefix}_{id}");
        let mut url = url::Url::parse(&base.database.url)?;
        url.set_path("/postgres");
        let admin_url = url.to_string();
        url.set_path(&format!("/{db_name}"));
        let mut cfg = base.clone();
        cfg.database.url = url.to_string();
        cfg.amqp.exchange = format!("xpb-bench-{id}");
        cfg.amqp.queue = format!("xpb-bench-{id}");
        cfg.amqp.dead_letter_exchange = format!("xpb-bench-{id}.dlx");
        cfg.amqp.dead_letter_queue = format!("xpb-bench-{id}.dead");
        // The receiver is on loopback.
        cfg.delivery.allow_private_networks = true;
        let world = World {
            cfg,
            broker_queue: format!("xpb-bench-{id}.bare"),
            admin_url,
            db_name,
        };
        world.admin(&format!("CREATE DATABASE {}", world.db_name)).await?;
        let pool = store::pool(&world.cfg.database.url, 2)?;
        store::migrate(&pool).await?;
        pool.close();
        Ok(world)
    }

    async fn admin(&self, sql: &str) -> anyhow::Result<()> {
        let (client, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client.batch_execute(sql).await?;
        Ok(())
    }

    /// Removes the database, the queues and the exchanges; best effort, says what it could not.
    pub async fn remove(&self) {
        let cfg = &self.cfg.amqp;
        match amqp::connect(&cfg.url, "cross-postback bench cleanup").await {
            Ok(conn) => {
                let (mut queues, exchanges) = amqp::declared_names(cfg);
                queues.push(self.broker_queue.clone());
                amqp::delete_all(&conn, &queues, &exchanges).await;
                amqp::close(&conn, &[]).await;
            }
            Err(e) => eprintln!(
                "bench: could not remove the queues: {}",
                crate::report::one_line(&e)
            ),
        }
        self.drop_database().await;
    }

    /// Removes the database only (a scenario that made no queues); best effort, says so.
    pub async fn drop_database(&self) {
        if let Err(e) = self
            .admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name))
            .await
        {
            let cause = crate::report::one_line(e.as_ref());
            eprintln!("bench: could not drop database {}: {cause}", self.db_name);
        }
    }
}
