//! The versions of what masters replicate: commands in the raft log and
//! state images in snapshots. A cluster is upgraded one master at a time,
//! so for a while masters of two versions share one log; a master that
//! meets something newer than it understands must stop, not guess (a
//! command applied differently on two masters is a silent divergence).

use ocean_proto::internal::{Command, StateImage};

/// The log format this build writes and the newest it applies.
pub const LOG_FORMAT: u32 = 1;

/// Why a replicated record cannot be applied by this build, or `None`.
pub fn command_problem(cmd: &Command, index: u64) -> Option<String> {
    if cmd.kind.is_none() {
        return Some(format!(
            "raft log entry {index} holds a command this master (log format {LOG_FORMAT}) does \
             not know, likely written by a newer Ocean: upgrade this master; it stops before \
             applying the entry, so its state stays as it was"
        ));
    }
    if cmd.min_version > LOG_FORMAT {
        return Some(format!(
            "raft log entry {index} needs log format {} and this master knows {LOG_FORMAT}: \
             upgrade this master; it stops before applying the entry",
            cmd.min_version
        ));
    }
    None
}

/// Why a state image cannot be loaded by this build, or `None`.
pub fn image_problem(image: &StateImage) -> Option<String> {
    (image.format > LOG_FORMAT).then(|| {
        format!(
            "the state image has log format {} and this master knows {LOG_FORMAT}: upgrade \
             this master",
            image.format
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::internal::{command, Noop};

    #[test]
    fn unknown_and_newer_commands_are_refused_naming_the_entry() {
        let known = Command {
            kind: Some(command::Kind::Noop(Noop {})),
            min_version: 0,
        };
        assert_eq!(command_problem(&known, 7), None);
        let unknown = Command {
            kind: None,
            min_version: 0,
        };
        let why = command_problem(&unknown, 7).expect("refused");
        assert!(why.contains("entry 7") && why.contains("upgrade"), "{why}");
        let newer = Command {
            min_version: LOG_FORMAT + 1,
            ..known
        };
        let why = command_problem(&newer, 9).expect("refused");
        assert!(why.contains("entry 9") && why.contains(&format!("format {}", LOG_FORMAT + 1)));
    }

    #[test]
    fn images_newer_than_this_build_are_refused() {
        let image = StateImage {
            format: LOG_FORMAT,
            ..StateImage::default()
        };
        assert_eq!(image_problem(&image), None);
        assert_eq!(image_problem(&StateImage::default()), None);
        let newer = StateImage {
            format: LOG_FORMAT + 1,
            ..StateImage::default()
        };
        assert!(image_problem(&newer).is_some());
    }
}
