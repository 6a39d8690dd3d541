//! The governance devnet runtime: just enough of Polkadot's OpenGov for cybergov's chain tests.
//!
//! Pallets: System, Timestamp, Balances, TransactionPayment, Utility, Proxy, Scheduler, Preimage,
//! Referenda, ConvictionVoting and a small `Origins` pallet for the track origins. Pallet indices,
//! track ids and the `Governance` proxy's encoding mirror the Polkadot relay chain, so encoded calls
//! look like Polkadot's; cybergov itself only relies on names read from the metadata.
//!
//! There is no consensus pallet: chopsticks builds the blocks and supplies only the timestamp
//! inherent. Block times are nominally 6 s (the period constants below), but chopsticks builds a
//! block per transaction, so the long decision periods keep referenda ongoing for the life of a test.
#![cfg_attr(not(feature = "std"), no_std)]

// `WASM_BINARY`, written by `build.rs` through substrate-wasm-builder.
#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

extern crate alloc;

use alloc::{borrow::Cow, vec, vec::Vec};
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame::deps::frame_support::traits::{
    AsEnsureOriginWithArg, EqualPrivilegeOnly, InstanceFilter, TotalIssuanceOf,
};
use frame::deps::frame_support::weights::IdentityFee;
use frame::deps::{sp_genesis_builder, sp_runtime};
use frame::runtime::{apis, prelude::*};
use frame_system::{EnsureRoot, EnsureSigned};
use pallet_referenda::{Curve, Track, TrackInfo};
use pallet_transaction_payment::{FeeDetails, RuntimeDispatchInfo};
use scale_info::TypeInfo;
use sp_runtime::{str_array as name, Perbill};

pub type AccountId = frame::runtime::types_common::AccountId;
pub type Balance = u128;
pub type BlockNumber = u32;
pub type Nonce = u32;

/// One token (symbol `UNIT`, 12 decimals, as in the chain spec's properties).
pub const UNIT: Balance = 1_000_000_000_000;
pub const MILLI_UNIT: Balance = UNIT / 1_000;

/// What each funded dev account holds at genesis.
pub const DEV_ENDOWMENT: Balance = 1_000_000 * UNIT;

/// Nominal block periods, for Polkadot-like track periods (6 s blocks).
pub const MINUTES: BlockNumber = 10;
pub const HOURS: BlockNumber = 60 * MINUTES;
pub const DAYS: BlockNumber = 24 * HOURS;

#[runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
    spec_name: Cow::Borrowed("cybergov-devnet"),
    impl_name: Cow::Borrowed("cybergov-devnet"),
    authoring_version: 1,
    spec_version: 1,
    impl_version: 1,
    apis: RUNTIME_API_VERSIONS,
    transaction_version: 1,
    system_version: 1,
};

/// The signed extensions of a plain Substrate chain, which subxt's default params fill in.
pub type TxExtension = (
    frame_system::CheckNonZeroSender<Runtime>,
    frame_system::CheckSpecVersion<Runtime>,
    frame_system::CheckTxVersion<Runtime>,
    frame_system::CheckGenesis<Runtime>,
    frame_system::CheckEra<Runtime>,
    frame_system::CheckNonce<Runtime>,
    frame_system::CheckWeight<Runtime>,
    pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
    frame_system::WeightReclaim<Runtime>,
);

#[frame_construct_runtime]
mod runtime {
    #[runtime::runtime]
    #[runtime::derive(
        RuntimeCall,
        RuntimeEvent,
        RuntimeError,
        RuntimeOrigin,
        RuntimeFreezeReason,
        RuntimeHoldReason,
        RuntimeSlashReason,
        RuntimeLockId,
        RuntimeTask,
        RuntimeViewFunction
    )]
    pub struct Runtime;

    // Indices as on the Polkadot relay chain.
    #[runtime::pallet_index(0)]
    pub type System = frame_system::Pallet<Runtime>;
    #[runtime::pallet_index(1)]
    pub type Scheduler = pallet_scheduler::Pallet<Runtime>;
    #[runtime::pallet_index(10)]
    pub type Preimage = pallet_preimage::Pallet<Runtime>;
    #[runtime::pallet_index(2)]
    pub type Timestamp = pallet_timestamp::Pallet<Runtime>;
    #[runtime::pallet_index(5)]
    pub type Balances = pallet_balances::Pallet<Runtime>;
    #[runtime::pallet_index(32)]
    pub type TransactionPayment = pallet_transaction_payment::Pallet<Runtime>;
    #[runtime::pallet_index(20)]
    pub type ConvictionVoting = pallet_conviction_voting::Pallet<Runtime>;
    #[runtime::pallet_index(21)]
    pub type Referenda = pallet_referenda::Pallet<Runtime>;
    #[runtime::pallet_index(22)]
    pub type Origins = pallet_custom_origins::Pallet<Runtime>;
    #[runtime::pallet_index(26)]
    pub type Utility = pallet_utility::Pallet<Runtime>;
    #[runtime::pallet_index(29)]
    pub type Proxy = pallet_proxy::Pallet<Runtime>;
}

parameter_types! {
    pub const Version: RuntimeVersion = VERSION;
    /// Generic Substrate addresses (`5...`).
    pub const SS58Prefix: u16 = 42;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
    type Block = Block;
    type Version = Version;
    type SS58Prefix = SS58Prefix;
    type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_timestamp::config_preludes::TestDefaultConfig)]
impl pallet_timestamp::Config for Runtime {}

parameter_types! {
    pub const ExistentialDeposit: Balance = MILLI_UNIT;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Runtime {
    type Balance = Balance;
    type ExistentialDeposit = ExistentialDeposit;
    type AccountStore = System;
}

// Fees: one planck per unit of weight and per byte, i.e. well under a milli-UNIT per transaction.
#[derive_impl(pallet_transaction_payment::config_preludes::TestDefaultConfig)]
impl pallet_transaction_payment::Config for Runtime {
    type OnChargeTransaction = pallet_transaction_payment::FungibleAdapter<Balances, ()>;
    type WeightToFee = IdentityFee<Balance>;
    type LengthToFee = IdentityFee<Balance>;
}

impl pallet_utility::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeCall = RuntimeCall;
    type PalletsOrigin = OriginCaller;
    type WeightInfo = ();
}

/// Proxy types, with the Polkadot relay chain's encodings for the ones we keep
/// (Any = 0, NonTransfer = 1, Governance = 2).
#[derive(
    Copy,
    Clone,
    Eq,
    PartialEq,
    Ord,
    PartialOrd,
    Encode,
    Decode,
    DecodeWithMemTracking,
    Debug,
    MaxEncodedLen,
    TypeInfo,
    Default,
)]
pub enum ProxyType {
    #[default]
    Any,
    NonTransfer,
    Governance,
}

impl InstanceFilter<RuntimeCall> for ProxyType {
    fn filter(&self, call: &RuntimeCall) -> bool {
        match self {
            ProxyType::Any => true,
            ProxyType::NonTransfer => !matches!(call, RuntimeCall::Balances(..)),
            // As on Polkadot: governance pallets plus Utility. Utility's batches dispatch their
            // inner calls with the proxy's filtered origin, so each inner call is checked by this
            // same filter; a `System.remark` or a transfer inside a batch is still refused.
            ProxyType::Governance => matches!(
                call,
                RuntimeCall::ConvictionVoting(..)
                    | RuntimeCall::Referenda(..)
                    | RuntimeCall::Utility(..)
            ),
        }
    }

    fn is_superset(&self, other: &Self) -> bool {
        match (self, other) {
            (x, y) if x == y => true,
            (ProxyType::Any, _) => true,
            (_, ProxyType::Any) => false,
            (ProxyType::NonTransfer, _) => true,
            _ => false,
        }
    }
}

parameter_types! {
    pub const ProxyDepositBase: Balance = 10 * MILLI_UNIT;
    pub const ProxyDepositFactor: Balance = MILLI_UNIT;
    pub const AnnouncementDepositBase: Balance = 10 * MILLI_UNIT;
    pub const AnnouncementDepositFactor: Balance = MILLI_UNIT;
}

impl pallet_proxy::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeCall = RuntimeCall;
    type Currency = Balances;
    type ProxyType = ProxyType;
    type ProxyDepositBase = ProxyDepositBase;
    type ProxyDepositFactor = ProxyDepositFactor;
    type MaxProxies = ConstU32<32>;
    type WeightInfo = ();
    type MaxPending = ConstU32<32>;
    type CallHasher = BlakeTwo256;
    type AnnouncementDepositBase = AnnouncementDepositBase;
    type AnnouncementDepositFactor = AnnouncementDepositFactor;
    type BlockNumberProvider = System;
}

parameter_types! {
    pub MaximumSchedulerWeight: Weight = Perbill::from_percent(80) *
        <<Runtime as frame_system::Config>::BlockWeights as Get<frame_system::limits::BlockWeights>>::get().max_block;
}

impl pallet_scheduler::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeOrigin = RuntimeOrigin;
    type PalletsOrigin = OriginCaller;
    type RuntimeCall = RuntimeCall;
    type MaximumWeight = MaximumSchedulerWeight;
    type ScheduleOrigin = EnsureRoot<AccountId>;
    type MaxScheduledPerBlock = ConstU32<50>;
    type WeightInfo = ();
    type OriginPrivilegeCmp = EqualPrivilegeOnly;
    type Preimages = Preimage;
    type BlockNumberProvider = System;
}

// Preimages cost no deposit on the devnet.
impl pallet_preimage::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type WeightInfo = ();
    type Currency = Balances;
    type ManagerOrigin = EnsureRoot<AccountId>;
    type Consideration = ();
}

parameter_types! {
    /// Short, so that conviction locks in tests expire quickly (Polkadot: 28 days).
    pub const VoteLockingPeriod: BlockNumber = 10;
}

impl pallet_conviction_voting::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type WeightInfo = ();
    type Currency = Balances;
    type Polls = Referenda;
    type MaxTurnout = TotalIssuanceOf<Balances, AccountId>;
    type MaxVotes = ConstU32<512>;
    type VoteLockingPeriod = VoteLockingPeriod;
    type BlockNumberProvider = System;
    type VotingHooks = ();
}

/// The origins of the non-root tracks, as Polkadot's `pallet_custom_origins` (a subset).
/// No call on the devnet requires them; they exist so that a referendum's origin, and so its
/// track, has the shape it has on Polkadot.
#[frame::pallet]
pub mod pallet_custom_origins {
    use frame::prelude::*;

    #[pallet::config]
    pub trait Config: frame_system::Config {}

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    #[derive(
        PartialEq, Eq, Clone, MaxEncodedLen, Encode, Decode, DecodeWithMemTracking, TypeInfo, Debug,
    )]
    #[pallet::origin]
    pub enum Origin {
        /// Track 2.
        WishForChange,
        /// Track 11.
        Treasurer,
        /// Track 30.
        SmallTipper,
        /// Track 33.
        MediumSpender,
    }
}

impl pallet_custom_origins::Config for Runtime {}

/// Track ids as on Polkadot.
pub mod tracks {
    pub const ROOT: u16 = 0;
    pub const WISH_FOR_CHANGE: u16 = 2;
    pub const TREASURER: u16 = 11;
    pub const SMALL_TIPPER: u16 = 30;
    pub const MEDIUM_SPENDER: u16 = 33;
}

/// Approval falls linearly from 100% to 50% over the decision period (Polkadot uses
/// reciprocal curves; the shape does not matter to a devnet whose referenda never end).
const APPROVAL: Curve = Curve::LinearDecreasing {
    length: Perbill::from_percent(100),
    floor: Perbill::from_percent(50),
    ceil: Perbill::from_percent(100),
};
/// Support falls linearly from 50% of the issuance to 0: a few dev accounts voting with part of
/// their balance cannot pass a referendum early.
const SUPPORT: Curve = Curve::LinearDecreasing {
    length: Perbill::from_percent(100),
    floor: Perbill::from_percent(0),
    ceil: Perbill::from_percent(50),
};

/// A track with the devnet's common settings: no preparation period, so a referendum starts
/// deciding as soon as its decision deposit is placed (including at genesis), then Polkadot-length
/// decision and confirm periods, so it stays ongoing for the life of any test.
const fn track(
    id: u16,
    name: [u8; 25],
    max_deciding: u32,
    decision_deposit: Balance,
    decision_period: BlockNumber,
    confirm_period: BlockNumber,
) -> Track<u16, Balance, BlockNumber> {
    Track {
        id,
        info: TrackInfo {
            name,
            max_deciding,
            decision_deposit,
            prepare_period: 0,
            decision_period,
            confirm_period,
            min_enactment_period: 1,
            min_approval: APPROVAL,
            min_support: SUPPORT,
        },
    }
}

static TRACKS: [Track<u16, Balance, BlockNumber>; 5] = [
    track(tracks::ROOT, name("root"), 1, 100 * UNIT, 28 * DAYS, DAYS),
    track(
        tracks::WISH_FOR_CHANGE,
        name("wish_for_change"),
        10,
        20 * UNIT,
        28 * DAYS,
        DAYS,
    ),
    track(
        tracks::TREASURER,
        name("treasurer"),
        10,
        10 * UNIT,
        28 * DAYS,
        7 * DAYS,
    ),
    track(
        tracks::SMALL_TIPPER,
        name("small_tipper"),
        200,
        UNIT,
        7 * DAYS,
        10 * MINUTES,
    ),
    track(
        tracks::MEDIUM_SPENDER,
        name("medium_spender"),
        50,
        2 * UNIT,
        28 * DAYS,
        DAYS,
    ),
];

pub struct TracksInfo;
impl pallet_referenda::TracksInfo<Balance, BlockNumber> for TracksInfo {
    type Id = u16;
    type RuntimeOrigin = <RuntimeOrigin as frame::traits::OriginTrait>::PalletsOrigin;

    fn tracks() -> impl Iterator<Item = Cow<'static, Track<Self::Id, Balance, BlockNumber>>> {
        TRACKS.iter().map(Cow::Borrowed)
    }

    fn track_for(origin: &Self::RuntimeOrigin) -> Result<Self::Id, ()> {
        use pallet_custom_origins::Origin;
        if let Ok(system) = frame_system::RawOrigin::try_from(origin.clone()) {
            match system {
                frame_system::RawOrigin::Root => Ok(tracks::ROOT),
                _ => Err(()),
            }
        } else if let Ok(custom) = Origin::try_from(origin.clone()) {
            Ok(match custom {
                Origin::WishForChange => tracks::WISH_FOR_CHANGE,
                Origin::Treasurer => tracks::TREASURER,
                Origin::SmallTipper => tracks::SMALL_TIPPER,
                Origin::MediumSpender => tracks::MEDIUM_SPENDER,
            })
        } else {
            Err(())
        }
    }
}

parameter_types! {
    pub const SubmissionDeposit: Balance = UNIT;
    /// A referendum without a decision deposit times out after this long (Polkadot: 14 days).
    pub const UndecidingTimeout: BlockNumber = 14 * DAYS;
}

impl pallet_referenda::Config for Runtime {
    type RuntimeCall = RuntimeCall;
    type RuntimeEvent = RuntimeEvent;
    type WeightInfo = ();
    type Scheduler = Scheduler;
    type Currency = Balances;
    // Any signed account may submit on any track, as on Polkadot.
    type SubmitOrigin = AsEnsureOriginWithArg<EnsureSigned<AccountId>>;
    type CancelOrigin = EnsureRoot<AccountId>;
    type KillOrigin = EnsureRoot<AccountId>;
    type Slash = ();
    type Votes = pallet_conviction_voting::VotesOf<Runtime>;
    type Tally = pallet_conviction_voting::TallyOf<Runtime>;
    type SubmissionDeposit = SubmissionDeposit;
    type MaxQueued = ConstU32<100>;
    type UndecidingTimeout = UndecidingTimeout;
    type AlarmInterval = ConstU32<1>;
    type Tracks = TracksInfo;
    type Preimages = Preimage;
    type BlockNumberProvider = System;
}

pub type Block = frame::runtime::types_common::BlockOf<Runtime, TxExtension>;
pub type Header = HeaderFor<Runtime>;
pub type RuntimeExecutive =
    Executive<Runtime, Block, frame_system::ChainContext<Runtime>, Runtime, AllPalletsWithSystem>;

/// The funded dev accounts. `Sr25519Keyring::iter()` would also fund `One` and `Two`; the devnet
/// names its accounts explicitly.
pub fn dev_accounts() -> [AccountId; 6] {
    [
        Sr25519Keyring::Alice,
        Sr25519Keyring::Bob,
        Sr25519Keyring::Charlie,
        Sr25519Keyring::Dave,
        Sr25519Keyring::Eve,
        Sr25519Keyring::Ferdie,
    ]
    .map(|k| k.to_account_id())
}

/// A `development` preset (balances only), for tools that build specs from the runtime itself.
/// The committed chain spec comes from `tests/devnet/genesis`, which adds proxies and referenda.
pub mod genesis_config_presets {
    use super::*;
    use serde_json::Value;

    pub fn development_config_genesis() -> Value {
        frame::deps::frame_support::build_struct_json_patch!(RuntimeGenesisConfig {
            balances: BalancesConfig {
                balances: dev_accounts()
                    .into_iter()
                    .map(|a| (a, DEV_ENDOWMENT))
                    .collect::<Vec<_>>(),
            },
        })
    }

    pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
        let patch = match id.as_ref() {
            sp_genesis_builder::DEV_RUNTIME_PRESET => development_config_genesis(),
            _ => return None,
        };
        Some(
            serde_json::to_string(&patch)
                .expect("a JSON value serialises")
                .into_bytes(),
        )
    }

    pub fn preset_names() -> Vec<PresetId> {
        vec![PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET)]
    }
}

impl_runtime_apis! {
    impl apis::Core<Block> for Runtime {
        fn version() -> RuntimeVersion { VERSION }
        fn execute_block(block: <Block as frame::traits::Block>::LazyBlock) {
            RuntimeExecutive::execute_block(block)
        }
        fn initialize_block(header: &Header) -> ExtrinsicInclusionMode {
            RuntimeExecutive::initialize_block(header)
        }
    }

    impl apis::Metadata<Block> for Runtime {
        fn metadata() -> OpaqueMetadata { OpaqueMetadata::new(Runtime::metadata().into()) }
        fn metadata_at_version(version: u32) -> Option<OpaqueMetadata> {
            Runtime::metadata_at_version(version)
        }
        fn metadata_versions() -> Vec<u32> { Runtime::metadata_versions() }
    }

    impl apis::BlockBuilder<Block> for Runtime {
        fn apply_extrinsic(extrinsic: ExtrinsicFor<Runtime>) -> ApplyExtrinsicResult {
            RuntimeExecutive::apply_extrinsic(extrinsic)
        }
        fn finalize_block() -> HeaderFor<Runtime> { RuntimeExecutive::finalize_block() }
        fn inherent_extrinsics(data: InherentData) -> Vec<ExtrinsicFor<Runtime>> {
            data.create_extrinsics()
        }
        fn check_inherents(
            block: <Block as frame::traits::Block>::LazyBlock,
            data: InherentData,
        ) -> CheckInherentsResult {
            data.check_extrinsics(&block)
        }
    }

    impl apis::TaggedTransactionQueue<Block> for Runtime {
        fn validate_transaction(
            source: TransactionSource,
            tx: ExtrinsicFor<Runtime>,
            block_hash: <Runtime as frame_system::Config>::Hash,
        ) -> TransactionValidity {
            RuntimeExecutive::validate_transaction(source, tx, block_hash)
        }
    }

    impl apis::OffchainWorkerApi<Block> for Runtime {
        fn offchain_worker(header: &HeaderFor<Runtime>) { RuntimeExecutive::offchain_worker(header) }
    }

    // No session keys without consensus; the API exists because clients expect it.
    impl apis::SessionKeys<Block> for Runtime {
        fn generate_session_keys(_owner: Vec<u8>, _seed: Option<Vec<u8>>) -> apis::OpaqueGeneratedSessionKeys {
            Default::default()
        }
        fn decode_session_keys(_encoded: Vec<u8>) -> Option<Vec<(Vec<u8>, apis::KeyTypeId)>> {
            Default::default()
        }
    }

    impl apis::AccountNonceApi<Block, AccountId, Nonce> for Runtime {
        fn account_nonce(account: AccountId) -> Nonce { System::account_nonce(account) }
    }

    impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentApi<Block, Balance> for Runtime {
        fn query_info(uxt: ExtrinsicFor<Runtime>, len: u32) -> RuntimeDispatchInfo<Balance> {
            TransactionPayment::query_info(uxt, len)
        }
        fn query_fee_details(uxt: ExtrinsicFor<Runtime>, len: u32) -> FeeDetails<Balance> {
            TransactionPayment::query_fee_details(uxt, len)
        }
        fn query_weight_to_fee(weight: Weight) -> Balance { TransactionPayment::weight_to_fee(weight) }
        fn query_length_to_fee(length: u32) -> Balance { TransactionPayment::length_to_fee(length) }
    }

    impl apis::GenesisBuilder<Block> for Runtime {
        fn build_state(config: Vec<u8>) -> sp_genesis_builder::Result {
            build_state::<RuntimeGenesisConfig>(config)
        }
        fn get_preset(id: &Option<PresetId>) -> Option<Vec<u8>> {
            get_preset::<RuntimeGenesisConfig>(id, self::genesis_config_presets::get_preset)
        }
        fn preset_names() -> Vec<PresetId> { self::genesis_config_presets::preset_names() }
    }
}
