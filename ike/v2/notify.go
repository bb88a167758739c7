package v2

import "fmt"

// NotifyType is a Notify Message Type (RFC 7296 §3.10.1): below 16384 an
// error, from 16384 a status.
type NotifyType uint16

// Error types (§3.10.1).
const (
	UnsupportedCriticalPayload NotifyType = 1
	InvalidIKESPI              NotifyType = 4
	InvalidMajorVersion        NotifyType = 5
	InvalidSyntax              NotifyType = 7
	InvalidMessageID           NotifyType = 9
	InvalidSPI                 NotifyType = 11
	NoProposalChosen           NotifyType = 14
	InvalidKEPayload           NotifyType = 17
	AuthenticationFailed       NotifyType = 24
	SinglePairRequired         NotifyType = 34
	NoAdditionalSAs            NotifyType = 35
	InternalAddressFailure     NotifyType = 36
	FailedCPRequired           NotifyType = 37
	TSUnacceptable             NotifyType = 38
	InvalidSelectors           NotifyType = 39
	TemporaryFailure           NotifyType = 43
	ChildSANotFound            NotifyType = 44
	// StateNotFound answers an IKE_FOLLOWUP_KE the responder has no
	// state for (RFC 9370 §2.2.4).
	StateNotFound NotifyType = 47
)

// Status types (§3.10.1, RFC 7383, RFC 7427).
const (
	InitialContact              NotifyType = 16384
	SetWindowSize               NotifyType = 16385
	AdditionalTSPossible        NotifyType = 16386
	IPCompSupported             NotifyType = 16387
	NATDetectionSourceIP        NotifyType = 16388
	NATDetectionDestinationIP   NotifyType = 16389
	Cookie                      NotifyType = 16390
	UseTransportMode            NotifyType = 16391
	HTTPCertLookupSupported     NotifyType = 16392
	RekeySA                     NotifyType = 16393
	ESPTFCPaddingNotSupported   NotifyType = 16394
	NonFirstFragmentsAlso       NotifyType = 16395
	MOBIKESupported             NotifyType = 16396
	IKEv2FragmentationSupported NotifyType = 16430
	SignatureHashAlgorithms     NotifyType = 16431
	// RFC 9242 §3.1: both ends support IKE_INTERMEDIATE.
	IntermediateExchangeSupported NotifyType = 16438
	// RFC 9370 §2.2.4: links IKE_FOLLOWUP_KE exchanges to their
	// CREATE_CHILD_SA; its data means something to the responder only.
	AdditionalKeyExchange NotifyType = 16441
	firstStatus           NotifyType = 16384
)

var notifyNames = map[NotifyType]string{
	UnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD", InvalidIKESPI: "INVALID_IKE_SPI",
	InvalidMajorVersion: "INVALID_MAJOR_VERSION", InvalidSyntax: "INVALID_SYNTAX",
	InvalidMessageID: "INVALID_MESSAGE_ID", InvalidSPI: "INVALID_SPI", NoProposalChosen: "NO_PROPOSAL_CHOSEN",
	InvalidKEPayload: "INVALID_KE_PAYLOAD", AuthenticationFailed: "AUTHENTICATION_FAILED",
	SinglePairRequired: "SINGLE_PAIR_REQUIRED", NoAdditionalSAs: "NO_ADDITIONAL_SAS",
	InternalAddressFailure: "INTERNAL_ADDRESS_FAILURE", FailedCPRequired: "FAILED_CP_REQUIRED",
	TSUnacceptable: "TS_UNACCEPTABLE", InvalidSelectors: "INVALID_SELECTORS",
	TemporaryFailure: "TEMPORARY_FAILURE", ChildSANotFound: "CHILD_SA_NOT_FOUND", StateNotFound: "STATE_NOT_FOUND",
	InitialContact: "INITIAL_CONTACT", SetWindowSize: "SET_WINDOW_SIZE",
	AdditionalTSPossible: "ADDITIONAL_TS_POSSIBLE", IPCompSupported: "IPCOMP_SUPPORTED",
	NATDetectionSourceIP: "NAT_DETECTION_SOURCE_IP", NATDetectionDestinationIP: "NAT_DETECTION_DESTINATION_IP",
	Cookie: "COOKIE", UseTransportMode: "USE_TRANSPORT_MODE", HTTPCertLookupSupported: "HTTP_CERT_LOOKUP_SUPPORTED",
	RekeySA: "REKEY_SA", ESPTFCPaddingNotSupported: "ESP_TFC_PADDING_NOT_SUPPORTED",
	NonFirstFragmentsAlso: "NON_FIRST_FRAGMENTS_ALSO", MOBIKESupported: "MOBIKE_SUPPORTED",
	IKEv2FragmentationSupported: "IKEV2_FRAGMENTATION_SUPPORTED", SignatureHashAlgorithms: "SIGNATURE_HASH_ALGORITHMS",
	IntermediateExchangeSupported: "INTERMEDIATE_EXCHANGE_SUPPORTED", AdditionalKeyExchange: "ADDITIONAL_KEY_EXCHANGE",
}

func (t NotifyType) String() string {
	if s, ok := notifyNames[t]; ok {
		return s
	}
	return fmt.Sprintf("notify-%d", uint16(t))
}

// IsError reports whether t is an error type.
func (t NotifyType) IsError() bool { return t < firstStatus }

// NotifyError is an error notification: one the peer sent, or one this
// end answers with.
type NotifyError struct {
	Type NotifyType
	Data []byte
}

func (e *NotifyError) Error() string { return "v2: " + e.Type.String() }
