//! Logging a batch, with the conversions whose stored history does not decode rejected.

use lapin::message::Delivery;

use super::{CONFLICT_RETRIES, Intake, IntakeError, parse};
use crate::ops::UNDECODABLE_HISTORY;
use crate::store::{StoreError, intake as sql};

impl Intake {
    /// Logs the batch. A conversion whose stored history does not decode cannot be decided:
    /// its messages are rejected (stored and dead-lettered with the reason, to be replayed once
    /// the row is fixed) and the rest of the batch is logged as usual.
    pub(super) async fn log(
        &self,
        batch: &[Delivery],
        messages: &mut [sql::Message],
    ) -> Result<sql::Logged, IntakeError> {
        let lease = self.cfg.delivery.lease.0;
        let mut tries = 0;
        loop {
            let mut client = self.pool.get().await.map_err(StoreError::from)?;
            match sql::log_batch(&mut client, messages, self.owner, lease).await {
                Ok(logged) => return Ok(logged),
                Err(e) if e.is_retryable_conflict() && tries < CONFLICT_RETRIES => tries += 1,
                Err(sql::LogError::History { conversion_id, cause }) => {
                    tracing::error!(conversion_id = %conversion_id, error = %cause, "the stored history does not decode; this conversion's events are rejected until the row is fixed");
                    let reason = format!(
                        "conversion {conversion_id}: the stored history does not decode ({cause}); replay this message once the row is fixed"
                    );
                    let max = self.cfg.amqp.max_message_bytes;
                    let mut rejected = 0;
                    for (delivery, message) in batch.iter().zip(messages.iter_mut()) {
                        if matches!(message, sql::Message::Valid(e) if e.conversion_id == conversion_id) {
                            *message = parse::rejected(delivery, max, UNDECODABLE_HISTORY, reason.clone());
                            rejected += 1;
                        }
                    }
                    // Each round rejects at least one message, so this ends; a conversion not in
                    // the batch would be a store fault, not this batch's.
                    if rejected == 0 {
                        return Err(sql::LogError::History { conversion_id, cause }.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
